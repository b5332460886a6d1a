//! Reports for CI systems and people, end to end: SARIF checked by
//! Microsoft's validator with locations on the fixtures' real lines and
//! fingerprints stable across runs; JUnit read by a real JUnit reader and in
//! agreement with `check`'s exit code for every gate condition; the demo's
//! HTML page rendered by headless Chromium; every format refusing a bad
//! report with exit 2. The validator, junitparser and Chromium are
//! provisioned by `cargo xtask setup`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use crate::support::*;

/// Debian's Python: where `apt-get install python3-…` puts its modules
/// (a python3 earlier on PATH, e.g. pyenv's, does not see them).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A tool the tests need: missing it fails the test (CI provisions it).
fn tool(name: &str) -> String {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().unwrap();
    assert!(found.status.success(), "{name} is not installed: run `cargo xtask setup`");
    String::from_utf8_lossy(&found.stdout).trim().to_string()
}

fn sarif_validate(path: &Path) {
    let out = Command::new(tool("sarif-multitool")).arg("validate").arg(path).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "validator failed on {}:\n{text}", path.display());
    assert!(!text.contains(": error "), "validator errors in {}:\n{text}", path.display());
}

/// JSON that is not a mapaudit report (`read_json` checks the report schema).
fn read_plain_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn fingerprints(sarif: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = (sarif["runs"][0]["results"].as_array().unwrap().iter())
        .map(|r| {
            (r["ruleId"].as_str().unwrap().to_string(), r["partialFingerprints"]["mapauditFinding/v1"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

root_test! {
    fn sarif_from_the_racy_and_shared_fixtures_validates_and_points_at_real_lines(name) {
        let dir = scratch(name);
        // The racy fixture: an overlap, recorded straight to SARIF too.
        let racy = fixtures::build("racy", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let (json, sarif) = (dir.join("racy.json"), dir.join("racy.sarif"));
        let out = run(&[
            "record",
            "--json",
            json.to_str().unwrap(),
            "--format",
            "sarif",
            "--output",
            sarif.to_str().unwrap(),
            "--source-root",
            repo().to_str().unwrap(),
            "--",
            racy.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "the fixture dies of Go's fatal: {}", String::from_utf8_lossy(&out.stderr));
        let t = truth(&out.stdout);
        sarif_validate(&sarif);
        let s = read_plain_json(&sarif);
        let run0 = &s["runs"][0];
        let results = run0["results"].as_array().unwrap();
        let report = read_json(&json);
        assert_eq!(results.len(), report["findings"].as_array().unwrap().len(), "one result per finding");
        let ov = results.iter().find(|r| r["ruleId"] == "overlapping_writes").expect("an overlap result");
        assert_eq!(ov["level"], "error");
        let loc = &ov["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "fixtures/go/racy/main.go");
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "SRCROOT");
        assert_eq!(loc["region"]["startLine"], t["line"]);
        let text = ov["message"]["text"].as_str().unwrap();
        for g in t["goids"].as_array().unwrap() {
            assert!(text.contains(&g.to_string()), "both goroutines in the message: {text}");
        }
        assert_eq!(
            run0["originalUriBaseIds"]["SRCROOT"]["uri"].as_str().unwrap(),
            format!("file://{}/", std::fs::canonicalize(repo()).unwrap().display())
        );

        // The shared fixture twice: same findings, same fingerprints; `check`
        // writes SARIF from a report without privileges.
        let writers = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let mut prints = Vec::new();
        for i in 0..2 {
            let json = dir.join(format!("writers{i}.json"));
            let out = run(&["record", "--json", json.to_str().unwrap(), "--", writers.to_str().unwrap(), "-n", "2000"]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let sarif = dir.join(format!("writers{i}.sarif"));
            let c = run(&["check", json.to_str().unwrap(), "--format", "sarif", "--output", sarif.to_str().unwrap()]);
            assert_eq!(c.status.code(), Some(0), "{}", String::from_utf8_lossy(&c.stderr));
            sarif_validate(&sarif);
            let s = read_plain_json(&sarif);
            let shared = s["runs"][0]["results"].as_array().unwrap().iter().find(|r| r["ruleId"] == "shared_map").cloned();
            let shared = shared.expect("a shared_map result");
            assert_eq!(shared["level"], "note");
            // Without --source-root: absolute file URIs at the writer's real line.
            let uri = shared["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap().to_string();
            assert!(uri.starts_with("file:///") && uri.ends_with("/fixtures/go/writers/main.go"), "{uri}");
            let line = shared["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64().unwrap();
            let site = shared["message"]["text"].as_str().unwrap();
            assert!(site.contains(&format!("main.go:{line}")), "{site}");
            prints.push(fingerprints(&s));
        }
        assert_eq!(prints[0], prints[1], "the same findings get the same fingerprints across runs");
    }
}

root_test! {
    fn junit_failures_match_checks_exit_code_for_every_gate_condition(name) {
        let python = DEBIAN_PYTHON;
        let dir = scratch(name);
        let writers = fixtures::build("writers", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let json = dir.join("writers.json");
        let out = run(&["record", "--json", json.to_str().unwrap(), "--", writers.to_str().unwrap(), "-n", "2000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // (condition, exit code check must give): a mutex-guarded shared map,
        // no overlap, recorded without --reads, nothing lost.
        let cases: [(&[&str], i32); 6] = [
            (&["--fail-on", "overlap"], 0),
            (&["--fail-on", "shared-map"], 1),
            (&["--fail-on", "read-during-write"], 1),
            (&["--max-writes-per-sec", "1"], 1),
            (&["--max-writes-per-sec", "1000000000000"], 0),
            (&["--max-lost-events", "0"], 0),
        ];
        for (i, (cond, want)) in cases.iter().enumerate() {
            let xml = dir.join(format!("junit{i}.xml"));
            let mut args = vec!["check", json.to_str().unwrap(), "--format", "junit", "--output", xml.to_str().unwrap()];
            args.extend_from_slice(cond);
            let c = run(&args);
            assert_eq!(c.status.code(), Some(*want), "{cond:?}: {}", String::from_utf8_lossy(&c.stderr));
            // A real JUnit reader: cases, and failures per case.
            let script = "import sys, junitparser\n\
                          x = junitparser.JUnitXml.fromfile(sys.argv[1])\n\
                          for suite in x:\n\
                          \x20   for case in suite:\n\
                          \x20       print(case.name + '\\t' + ('failed' if any(isinstance(r, junitparser.Failure) for r in case.result) else 'passed'))\n";
            let p = Command::new(python).args(["-c", script]).arg(&xml).output().unwrap();
            assert!(p.status.success(), "junitparser: {}", String::from_utf8_lossy(&p.stderr));
            let cases = String::from_utf8_lossy(&p.stdout).to_string();
            let lines: Vec<&str> = cases.lines().collect();
            assert_eq!(lines.len(), 1, "one case per condition: {cases}");
            let (case, state) = lines[0].split_once('\t').unwrap();
            assert_eq!(case, cond.join(" "), "the case is named after the condition");
            assert_eq!(state, if *want == 1 { "failed" } else { "passed" }, "{cond:?}");
        }
    }
}

root_test! {
    fn the_demos_html_report_renders_in_headless_chromium_and_loads_nothing(name) {
        let chromium = tool("chromium");
        let dir = scratch(name);
        let demo = fixtures::build("demo", fixtures::GO_NEWEST, Variant::Plain).unwrap();
        let (json, html) = (dir.join("demo.json"), dir.join("demo.html"));
        let out = run(&[
            "record",
            "--json",
            json.to_str().unwrap(),
            "--format",
            "html",
            "--output",
            html.to_str().unwrap(),
            "--fail-on",
            "overlap",
            "--",
            demo.to_str().unwrap(),
            "-mode",
            "hot",
            "-duration",
            "3s",
        ]);
        assert_eq!(out.status.code(), Some(0), "the hot demo locks its map: {}", String::from_utf8_lossy(&out.stderr));
        let report = read_json(&json);
        let page = std::fs::read_to_string(&html).unwrap();
        // Nothing to fetch: no URL, no script, a policy that forbids loading.
        assert!(page.contains("default-src 'none'"));
        for bad in ["http:", "https:", "//", "<script", "src=", "href=", "url("] {
            let inside_tags = page.split('<').skip(1).any(|tag| tag.split('>').next().unwrap_or("").contains(bad));
            assert!(!inside_tags, "{bad} in a tag of the page");
        }
        let browse = |extra: &[&str]| {
            let mut c = Command::new(&chromium);
            c.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"])
                // Any name lookup fails: a request could not leave the machine.
                .arg("--host-resolver-rules=MAP * ~NOTFOUND")
                .arg(format!("--user-data-dir={}", dir.join("chromium").display()))
                .args(extra)
                .arg(format!("file://{}", html.display()));
            let out = c.output().unwrap();
            assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
            out
        };
        let dom = String::from_utf8(browse(&["--dump-dom"]).stdout).unwrap();
        assert!(dom.contains("id=\"verdict\"") && dom.contains("gate passed"), "the verdict");
        let findings = report["findings"].as_array().unwrap();
        assert_eq!(dom.matches("class=\"card finding ").count(), findings.len(), "every finding");
        for f in findings {
            assert!(dom.contains(&format!("data-kind=\"{}\"", f["kind"].as_str().unwrap())));
        }
        // The top goroutine and map of the report are on the page.
        let p = &report["processes"][0];
        let mut gs = p["goroutines"].as_array().unwrap().clone();
        gs.sort_by_key(|g| std::cmp::Reverse(g["writes"].as_u64().unwrap()));
        assert!(dom.contains(&format!("goroutine {} ·", gs[0]["goid"])), "the top goroutine");
        assert!(dom.contains(p["maps"][0]["addr"].as_str().unwrap()), "a top map");
        for id in ["rank-goroutines", "rank-threads", "rank-maps", "rank-sites", "timeline"] {
            assert!(dom.contains(&format!("id=\"{id}\"")), "{id}");
        }
        // A 3 s run: a timeline with the total and at least one goroutine.
        let tl = &report["timeline"];
        assert!(tl["total"].as_array().unwrap().len() >= 2, "{tl}");
        assert!(dom.matches("<polyline").count() >= 2, "timeline lines");
        // A screenshot that is not blank: many distinct colours.
        let png = dir.join("demo.png");
        browse(&[&format!("--screenshot={}", png.display()), "--window-size=1200,1600", "--hide-scrollbars"]);
        let script = "import sys; from PIL import Image\n\
                      im = Image.open(sys.argv[1]).convert('RGB')\n\
                      print(len(set(im.getdata())), im.size[0], im.size[1])\n";
        let p = Command::new(DEBIAN_PYTHON).args(["-c", script]).arg(&png).output().unwrap();
        assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
        let stats = String::from_utf8_lossy(&p.stdout).to_string();
        let colours: usize = stats.split_whitespace().next().unwrap().parse().unwrap();
        assert!(colours > 20, "a blank page has one colour: {stats}");
    }
}

user_test! {
    fn every_format_refuses_a_malformed_or_empty_report_with_exit_2(name) {
        let dir = scratch(name);
        let empty = dir.join("empty.json");
        std::fs::write(&empty, b"").unwrap();
        let broken = dir.join("broken.json");
        std::fs::write(&broken, b"{\"schema\": \"mapaudit/v1\", \"totals\": ").unwrap();
        let missing = dir.join("missing.json");
        for format in ["sarif", "junit", "markdown", "html"] {
            for (report, says) in [(&empty, "not a valid mapaudit JSON report"), (&broken, "not a valid"), (&missing, "cannot read report")] {
                let out = dir.join(format!("out.{format}"));
                let c = run(&["check", report.to_str().unwrap(), "--format", format, "--output", out.to_str().unwrap()]);
                let err = String::from_utf8_lossy(&c.stderr);
                assert_eq!(c.status.code(), Some(2), "{format} {}: {err}", report.display());
                assert!(err.contains(says), "{format}: {err}");
                assert!(!out.exists(), "nothing written for a bad report");
            }
        }
        // Unpaired formats and outputs: a usage error that says how to pair them.
        let c = run(&["check", empty.to_str().unwrap(), "--format", "sarif", "--format", "junit"]);
        assert_eq!(c.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&c.stderr).contains("one --output per --format"));
    }
}
