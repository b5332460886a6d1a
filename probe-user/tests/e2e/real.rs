//! Real programs nobody here wrote: the Go toolchain building a module with
//! a cold cache execs hundreds of compilers and assemblers, each a Go
//! program with heavy map churn. Every one is audited from its first
//! instruction, nothing is lost, and none is left stopped.

use std::collections::BTreeMap;

use crate::support::*;

const MAIN_GO: &str = "package main\n\nimport (\n\t\"encoding/json\"\n\t\"fmt\"\n\t\"net/http\"\n)\n\n\
func main() { b, _ := json.Marshal(map[string]int{\"a\": 1}); fmt.Println(string(b), http.StatusOK) }\n";

/// Processes in a stopped state (`T`), as `ps` sees them.
fn stopped() -> Vec<String> {
    let out = std::process::Command::new("ps").args(["-eo", "stat=,pid=,comm="]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.trim_start().starts_with('T')).map(str::to_string).collect()
}

root_test! {
    fn go_build_with_a_cold_cache_is_audited_whole(name) {
        let dir = scratch(name);
        let module = dir.join("mod");
        std::fs::create_dir_all(&module).unwrap();
        std::fs::write(module.join("go.mod"), "module smoke\n\ngo 1.21\n").unwrap();
        std::fs::write(module.join("main.go"), MAIN_GO).unwrap();
        let go = fixtures::go_binary(fixtures::GO_NEWEST).unwrap();
        let json = dir.join("r.json");
        let before = stopped();
        let out = std::process::Command::new(mapaudit_bin())
            .args(["record", "--no-bpf-maps", "--json"])
            .arg(&json)
            .arg("--")
            .arg(&go)
            .args(["build", "-x", "-o"])
            .arg(dir.join("smoke"))
            .arg(".")
            .current_dir(&module)
            .env("GOCACHE", dir.join("gocache"))
            .env("GOPATH", dir.join("gopath"))
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .env("CGO_ENABLED", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the build completes: {}", &stderr[stderr.len().saturating_sub(3000)..]);
        assert!(dir.join("smoke").exists());
        // What `go build -x` says it ran.
        let mut ran: BTreeMap<&str, usize> = BTreeMap::new();
        for l in stderr.lines() {
            if l.starts_with(' ') {
                // mapaudit's summary (its lines are indented) names the
                // tools' executables too; `go build -x` lines never start
                // with a space.
                continue;
            }
            let cmd = l.split_whitespace().find(|w| w.contains("/pkg/tool/")).unwrap_or("");
            for tool in ["compile", "asm", "link"] {
                if cmd.ends_with(&format!("/{tool}")) {
                    *ran.entry(tool).or_default() += 1;
                }
            }
        }
        assert!(ran.get("compile").copied().unwrap_or(0) > 100 && ran.contains_key("asm") && ran["link"] == 1, "{ran:?}");

        let r = read_json(&json);
        assert_eq!(r["totals"]["lost_events"], 0, "nothing lost: {:#}", r["lost"]);
        let mut audited: BTreeMap<String, usize> = BTreeMap::new();
        for p in r["processes"].as_array().unwrap() {
            let exe = p["exe"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
            assert_eq!(p["go_version"], format!("go{}", fixtures::GO_NEWEST), "{exe}");
            *audited.entry(exe).or_default() += 1;
        }
        // Every tool run is a process of the report (the go command also runs
        // `compile -V=full` and `asm -V=full` to learn their versions: those
        // are audited too, so the report may have a few more).
        for (tool, n) in &ran {
            let got = audited.get(*tool).copied().unwrap_or(0);
            assert!(got >= *n && got <= *n + 2, "{tool}: {n} run, {got} audited ({audited:?})");
        }
        assert_eq!(audited.get("go"), Some(&1));
        // The compilers' writes are named: in the rows a process keeps, and
        // in its classes (a process that exited 30 s before the end has had
        // its rows folded into them: `Model::fold_idle`).
        let compilers: Vec<&serde_json::Value> =
            r["processes"].as_array().unwrap().iter().filter(|p| p["exe"].as_str().unwrap().ends_with("/compile")).collect();
        let sites_of = |p: &serde_json::Value| -> Vec<String> {
            let rows = p["maps"].as_array().unwrap().iter().flat_map(|m| m["sites"].as_array().unwrap().iter()).filter_map(|s| s["function"].as_str());
            let classes = p["map_classes"].as_array().unwrap().iter().filter_map(|c| c["site"].as_str());
            rows.chain(classes).map(String::from).collect()
        };
        let compile_sites: usize =
            compilers.iter().map(|p| sites_of(p).iter().filter(|f| f.starts_with("cmd/compile/")).count()).sum();
        assert!(compile_sites > 1000, "writes attributed to the compiler's own sites: {compile_sites}");
        let unnamed: Vec<&serde_json::Value> =
            compilers.iter().copied().filter(|p| !sites_of(p).iter().any(|f| f.starts_with("cmd/"))).map(|p| &p["pid"]).collect();
        assert!(unnamed.is_empty(), "compilers none of whose sites is named: {unnamed:?}");
        let after: Vec<_> = stopped().into_iter().filter(|s| !before.contains(s)).collect();
        assert!(after.is_empty(), "no process left stopped: {after:?}");
    }
}
