//! Shared helpers for the root end-to-end tests: root gating (a skip is a
//! failure under `cargo xtask test`), running mapaudit, fixture truth.
#![allow(dead_code, unused_imports, reason = "each test binary uses a subset")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "in tests a failed step is a failed test")]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub use mapaudit::fixtures::{self, Variant};

/// The mapaudit under test: `$MAPAUDIT_BIN` (`cargo xtask test` sets it to
/// the release build, the one that ships), else this test build's.
pub fn mapaudit_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| std::env::var("MAPAUDIT_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mapaudit").to_string()))
}

/// True when the test may run. Not root: under `cargo xtask test`
/// (MAPAUDIT_REQUIRE_ROOT_TESTS=1) that is a failure; under plain
/// `cargo test` a loud skip.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let marker = fixtures::workspace_root().join("target/root-tests-ran.txt");
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(marker) {
            let _ = writeln!(f, "{test}");
        }
        return true;
    }
    if std::env::var("MAPAUDIT_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1") {
        panic!("{test}: root end-to-end test cannot run without root (MAPAUDIT_REQUIRE_ROOT_TESTS=1)");
    }
    eprintln!("\n*** SKIPPED {test}: needs root (run `sudo -E cargo xtask test`) ***\n");
    false
}

/// A scratch directory per test. Under `sudo -E cargo xtask test` it
/// belongs to the sudo user: mapaudit writes its reports as that user.
pub fn scratch(name: &str) -> PathBuf {
    let d = fixtures::workspace_root().join("target/e2e").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    let sudo = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0
        && let (Some(uid), Some(gid)) = (sudo("SUDO_UID"), sudo("SUDO_GID"))
    {
        std::os::unix::fs::chown(&d, Some(uid), Some(gid)).expect("chown scratch dir to the sudo user");
    }
    d
}

/// A scratch directory that belongs to `uid:gid` (mapaudit writes reports
/// as the user it acts for).
pub fn scratch_owned(name: &str, uid: u32, gid: u32) -> PathBuf {
    let d = scratch(name);
    std::os::unix::fs::chown(&d, Some(uid), Some(gid)).expect("chown scratch dir");
    d
}

pub fn run(args: &[&str]) -> Output {
    Command::new(mapaudit_bin()).args(args).output().expect("running mapaudit")
}

/// Reads a report and validates it against the published JSON Schema.
pub fn read_json(path: &Path) -> Value {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading report {}: {e}", path.display()));
    let v: Value = serde_json::from_slice(&data).unwrap_or_else(|e| panic!("parsing report {}: {e}", path.display()));
    assert_valid_report(&v);
    v
}

pub fn assert_valid_report(v: &Value) {
    let schema: Value = serde_json::from_str(include_str!("../../schema/mapaudit-v1.schema.json")).expect("schema parses");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(v).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "report violates the schema: {errors:#?}");
}

/// The last line of `stdout` that parses as JSON: the fixture's truth.
pub fn truth(stdout: &[u8]) -> Value {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| panic!("no truth JSON in output: {}", String::from_utf8_lossy(stdout)))
}

/// Every line of `stdout` that parses as JSON, in order.
pub fn truths(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout).lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
}

pub fn process(report: &Value, pid: u64) -> &Value {
    report["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["pid"] == pid))
        .unwrap_or_else(|| panic!("pid {pid} not in report: {report:#}"))
}

/// The fixture source a runtime-reported file name refers to: itself, or
/// for a `-trimpath` build (`mapaudit.dev/fixtures/NAME/main.go`) the file
/// under `fixtures/go/NAME/`.
pub fn source_path(file: &str) -> PathBuf {
    if Path::new(file).is_absolute() {
        return PathBuf::from(file);
    }
    let rel = file.strip_prefix("mapaudit.dev/fixtures/").unwrap_or(file);
    fixtures::workspace_root().join("fixtures/go").join(rel)
}

/// 1-based line of the first line in `file` containing `marker`.
pub fn line_of(file: &str, marker: &str) -> u64 {
    let src = std::fs::read_to_string(source_path(file)).expect("fixture source");
    src.lines().position(|l| l.contains(marker)).map(|i| i as u64 + 1).unwrap_or_else(|| panic!("{marker} not in {file}"))
}

/// Asserts the report matches the `writers` fixture's printed truth exactly.
pub fn assert_writers_truth(report: &Value, truth: &Value, ctx: &str) {
    let pid = truth["pid"].as_u64().expect("pid");
    let file = truth["file"].as_str().expect("file");
    let p = process(report, pid);
    let goid_of = |name: &str| {
        truth["goroutines"].as_array().unwrap().iter().find(|g| g["name"] == name).unwrap()["goid"].as_u64().unwrap()
    };
    for g in truth["goroutines"].as_array().expect("goroutines") {
        let goid = g["goid"].as_u64().unwrap();
        let rg = p["goroutines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["goid"] == goid)
            .unwrap_or_else(|| panic!("{ctx}: goroutine {goid} ({}) missing from report", g["name"]));
        for f in ["writes", "deletes", "clears"] {
            assert_eq!(rg[f], g[f], "{ctx}: goroutine {} {f}", g["name"]);
        }
        assert_eq!(rg["tids"], serde_json::json!([g["tid"]]), "{ctx}: goroutine {} tids", g["name"]);
        let created = format!("main.main main.go:{}", g["created_line"]);
        assert_eq!(rg["created_by"], created.as_str(), "{ctx}: goroutine {} created_by", g["name"]);
        let rt = p["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tid"] == g["tid"])
            .unwrap_or_else(|| panic!("{ctx}: thread {} missing", g["tid"]));
        for f in ["writes", "deletes", "clears"] {
            assert_eq!(rt[f], g[f], "{ctx}: thread of {} {f}", g["name"]);
        }
    }
    for m in truth["maps"].as_array().expect("maps") {
        let rm = p["maps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["addr"] == m["addr"])
            .unwrap_or_else(|| panic!("{ctx}: map {} ({}) missing from report", m["addr"], m["name"]));
        assert_eq!(rm["type"], m["type"], "{ctx}: map {} type", m["name"]);
        for f in ["writes", "deletes", "clears"] {
            assert_eq!(rm[f], m[f], "{ctx}: map {} {f}", m["name"]);
        }
        let mut writers: Vec<u64> = m["writers"].as_array().unwrap().iter().map(|n| goid_of(n.as_str().unwrap())).collect();
        writers.sort();
        assert_eq!(rm["writers"], serde_json::json!(writers), "{ctx}: map {} writers", m["name"]);
        assert_eq!(rm["overlaps"], 0, "{ctx}: map {} overlaps", m["name"]);
    }
    // Sites: the strs map is written at exactly two lines of main.strWriter.
    let strs = truth["maps"].as_array().unwrap().iter().find(|m| m["name"] == "strs").unwrap();
    let rm = p["maps"].as_array().unwrap().iter().find(|x| x["addr"] == strs["addr"]).unwrap();
    let g = truth["goroutines"].as_array().unwrap().iter().find(|g| g["name"] == "str").unwrap();
    let expect = [
        (line_of(file, "// mapassign_faststr"), g["writes"].as_u64().unwrap()),
        (line_of(file, "// mapdelete_faststr"), g["deletes"].as_u64().unwrap()),
    ];
    let sites = rm["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{ctx}: strs sites {sites:?}");
    for (line, n) in expect {
        let s = sites.iter().find(|s| s["line"] == line).unwrap_or_else(|| panic!("{ctx}: no site at line {line}: {sites:?}"));
        assert_eq!(s["function"], "main.strWriter", "{ctx}");
        // Exactly the file name the runtime itself reports (absolute, or the
        // module path under -trimpath).
        assert_eq!(s["file"], file, "{ctx}");
        assert!(file.ends_with("writers/main.go"), "{ctx}: {file}");
        assert_eq!(s["writes"], n, "{ctx}: site line {line}");
    }
    // The mutex-protected shared map: a shared_map finding, no overlap.
    let shared = truth["maps"].as_array().unwrap().iter().find(|m| m["name"] == "shared").unwrap();
    let findings = report["findings"].as_array().unwrap();
    let f: Vec<_> = findings.iter().filter(|f| f["map"] == shared["addr"]).collect();
    assert_eq!(f.len(), 1, "{ctx}: findings for shared map: {f:?}");
    assert_eq!(f[0]["kind"], "shared_map", "{ctx}");
    let mut both = vec![goid_of("shared1"), goid_of("shared2")];
    both.sort();
    assert_eq!(f[0]["goroutines"], serde_json::json!(both), "{ctx}");
    assert!(!findings.iter().any(|f| f["kind"] == "overlapping_writes" && f["pid"] == pid), "{ctx}: unexpected overlap");
    assert_eq!(report["totals"]["lost_events"], 0, "{ctx}: lost events");
    assert_goids_plausible(p, ctx);
}

/// The goroutine ids of a real recording pass `sanity::check` (what the
/// collector should run on the first hits): guards the check against false
/// alarms on every build of the matrix.
pub fn assert_goids_plausible(process: &Value, ctx: &str) {
    use mapaudit::kernel::sanity::{self, Decoded, Sample, Verdict};
    let samples: Vec<Sample> = process["goroutines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| Sample {
            goid: g["goid"].as_u64().unwrap(),
            gopc: 0,
            creator: g["created_by"].as_str().and_then(|c| c.split(' ').next()).map(str::to_string),
        })
        .collect();
    let decoded = Decoded { goid_offset: 0, gopc_offset: 0, source: "the binary" };
    assert_eq!(sanity::check(&samples, decoded), Verdict::Plausible, "{ctx}: {:#}", process["goroutines"]);
}
