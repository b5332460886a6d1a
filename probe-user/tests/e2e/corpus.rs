//! Root end-to-end tests on real programs nobody here wrote: the Go
//! toolchain's own binaries, each doing one short real job under
//! `mapaudit record` — `gofmt -l` on a source tree, `go vet` on a package
//! (go + vet), `go build` of a package with Go and assembly (go + compile +
//! asm + link). Every binary kind must be audited (its own version, maps
//! typed), every write attributed to a named site, nothing lost.
//!
//! Kept short for CI (2 cores): the build cache is warmed outside the
//! recording, and the package changes before each recorded job so that the
//! tool really runs instead of being answered from the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use crate::support::*;

/// A tiny module whose package has Go and assembly (`add` in `add_amd64.s`).
fn write_package(dir: &Path, generation: u32) {
    std::fs::write(dir.join("go.mod"), "module corpus.test/tiny\n\ngo 1.21\n").unwrap();
    std::fs::write(
        dir.join("main.go"),
        format!(
            "package main\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\n// generation {generation}: a new build each time.\nconst generation = {generation}\n\n\
             func add(a, b int) int\n\n\
             func main() {{\n\tm := map[string]int{{}}\n\tfor _, w := range strings.Fields(\"a b c a\") {{\n\t\tm[w] = add(m[w], generation)\n\t}}\n\tfmt.Println(m)\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("add_amd64.s"),
        "#include \"textflag.h\"\n\n// func add(a, b int) int\nTEXT ·add(SB),NOSPLIT,$0-24\n\tMOVQ a+0(FP), AX\n\tADDQ b+8(FP), AX\n\tMOVQ AX, ret+16(FP)\n\tRET\n",
    )
    .unwrap();
}

/// The environment the fixture builds use (warm cache, no network).
fn go_env(cmd: &mut Command, version: &str) {
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", fixtures::go_dir().join(format!("cache-{version}")))
        .env("GOPATH", fixtures::go_dir().join("gopath"));
}

/// `mapaudit record --json … -- CMD` in `dir`; returns the report.
fn record(name: &str, version: &str, dir: &Path, cmd: &[&str]) -> Value {
    let json = scratch(&format!("{name}-report")).join("report.json");
    let mut c = Command::new(mapaudit_bin());
    c.current_dir(dir).args(["record", "--no-bpf-maps", "--json", json.to_str().unwrap(), "--"]).args(cmd);
    go_env(&mut c, version);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{name}: {cmd:?} under mapaudit failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    read_json(&json)
}

/// The processes of the report whose executable is `kind`.
fn processes_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["exe"].as_str().unwrap().rsplit('/').next() == Some(kind))
        .collect()
}

/// Each kind ran, was audited as this Go version, wrote maps, and every
/// write is attributed to a named site of a typed map; nothing was lost.
fn assert_audited(report: &Value, version: &str, kinds: &[&str], ctx: &str) {
    assert_eq!(report["totals"]["lost_events"], 0, "{ctx}: lost events");
    for kind in kinds {
        let ps = processes_of(report, kind);
        assert!(!ps.is_empty(), "{ctx}: no {kind} process in the report: {:#}", report["processes"]);
        let mut writes = 0;
        for p in ps {
            assert_eq!(p["go_version"], format!("go{version}"), "{ctx}: {kind}");
            assert_eq!(p["go_version_source"], "buildinfo", "{ctx}: {kind}");
            for m in p["maps"].as_array().unwrap() {
                let t = m["type"].as_str().unwrap_or_default();
                assert!(!t.is_empty(), "{ctx}: {kind}: untyped map {m:#}");
                let mut at_sites = 0;
                for s in m["sites"].as_array().unwrap() {
                    assert!(s["function"].as_str().is_some_and(|f| !f.is_empty()), "{ctx}: {kind}: unnamed site {s:#}");
                    assert!(s["file"].as_str().is_some_and(|f| f.ends_with(".go")), "{ctx}: {kind}: site file {s:#}");
                    assert!(s["line"].as_u64().is_some_and(|l| l > 0), "{ctx}: {kind}: site line {s:#}");
                    at_sites += s["writes"].as_u64().unwrap();
                }
                let ops = ["writes", "deletes", "clears"].iter().map(|f| m[f].as_u64().unwrap()).sum::<u64>();
                assert_eq!(at_sites, ops, "{ctx}: {kind}: map {} ({t}) writes not all at sites: {m:#}", m["addr"]);
                writes += m["writes"].as_u64().unwrap();
            }
        }
        assert!(writes > 0, "{ctx}: {kind} made no map writes");
    }
}

fn toolchain_jobs(version: &str) {
    let name = format!("toolchain_jobs_go{version}");
    let go = fixtures::go_binary(version).unwrap();
    let goroot = go.parent().unwrap().parent().unwrap().to_path_buf();
    let gofmt: PathBuf = goroot.join("bin/gofmt");
    let dir = scratch(&name);

    // gofmt -l on a real source tree of the toolchain (already formatted:
    // prints nothing).
    let tree = goroot.join("src/go/format");
    let report = record(&format!("{name}-gofmt"), version, &dir, &[gofmt.to_str().unwrap(), "-l", tree.to_str().unwrap()]);
    assert_audited(&report, version, &["gofmt"], &format!("go{version} gofmt -l"));

    // Warm the cache for the package's dependencies (their export data and
    // vet facts), outside the recording: vetting the standard library under
    // audit takes minutes on CI's two cores.
    write_package(&dir, 1);
    for job in [&["build", "-o", "tiny", "."][..], &["vet", "."][..]] {
        let mut warm = Command::new(&go);
        warm.current_dir(&dir).args(job);
        go_env(&mut warm, version);
        assert!(warm.status().unwrap().success(), "{name}: warm-up {job:?}");
    }

    // go vet (go runs compile and asm for the package's export data and
    // symbols, then vet) on a changed package.
    write_package(&dir, 2);
    let report = record(&format!("{name}-vet"), version, &dir, &[go.to_str().unwrap(), "vet", "."]);
    assert_audited(&report, version, &["go", "vet"], &format!("go{version} go vet"));

    // go build (go runs compile, asm, link) of a changed package.
    write_package(&dir, 3);
    let report = record(&format!("{name}-build"), version, &dir, &[go.to_str().unwrap(), "build", "-o", "tiny", "."]);
    assert_audited(&report, version, &["go", "compile", "asm", "link"], &format!("go{version} go build"));
    let out = Command::new(dir.join("tiny")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "map[a:6 b:3 c:3]\n", "{name}: the program built under audit");
}

root_test! {
    fn toolchain_binaries_on_real_jobs_newest(_) {
        toolchain_jobs(fixtures::GO_NEWEST);
    }
}

root_test! {
    fn toolchain_binaries_on_real_jobs_oldest(_) {
        toolchain_jobs(fixtures::GO_OLDEST);
    }
}
