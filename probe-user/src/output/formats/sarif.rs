//! SARIF 2.1.0 for code scanning: one result per finding, a rule per kind,
//! locations at the finding's sites, and a fingerprint that stays the same
//! across runs (kind + map type + sites; never an address, pid or goroutine
//! id, which change every run).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{Options, Site, View, describe_kind, finding_message};
use crate::model::FindingKind;
use crate::output::report::FindingReport;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const KINDS: [FindingKind; 5] = [
    FindingKind::OverlappingWrites,
    FindingKind::ReadDuringWrite,
    FindingKind::SharedMap,
    FindingKind::IterateDuringWrite,
    FindingKind::GrowingMap,
];
const ROOT_ID: &str = "SRCROOT";
const FINGERPRINT: &str = "mapauditFinding/v1";

/// Characters a path keeps in a URI (RFC 3986 unreserved and `/`).
const PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub(super) fn render(v: &View, opts: &Options) -> Vec<u8> {
    let rules: Vec<Value> = KINDS.iter().map(|k| rule(*k)).collect();
    let results: Vec<Value> = (v.report.findings.iter())
        .map(|f| result(v, opts, f, KINDS.iter().position(|k| *k == f.kind).unwrap_or(0)))
        .collect();
    let mut run = json!({
        "tool": {"driver": {
            "name": "mapaudit",
            "version": env!("CARGO_PKG_VERSION"),
            "semanticVersion": env!("CARGO_PKG_VERSION"),
            "informationUri": "https://github.com/mapaudit/mapaudit",
            "rules": rules,
        }},
        "columnKind": "unicodeCodePoints",
        "results": results,
        "properties": {
            "verdict": v.verdict.text(),
            "durationSeconds": v.report.duration_s,
            "lostEvents": v.report.totals.lost_events,
        },
    });
    if let Some(root) = &opts.source_root {
        let mut uri = file_uri(&root.to_string_lossy());
        if !uri.ends_with('/') {
            uri.push('/');
        }
        run["originalUriBaseIds"] = json!({ ROOT_ID: {"uri": uri} });
    }
    let log = json!({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]});
    let mut out = serde_json::to_vec_pretty(&log).unwrap_or_default();
    out.push(b'\n');
    out
}

fn rule(kind: FindingKind) -> Value {
    let (title, level, help) = describe_kind(kind);
    json!({
        "id": kind.as_str(),
        "name": pascal(kind.as_str()),
        "shortDescription": {"text": format!("{title}.")},
        "fullDescription": {"text": help},
        "help": {"text": help, "markdown": help},
        "defaultConfiguration": {"level": level},
        "properties": {"tags": ["concurrency", "go-maps"]},
    })
}

fn result(v: &View, opts: &Options, f: &FindingReport, rule_index: usize) -> Value {
    let (_, level, _) = describe_kind(f.kind);
    let sites: Vec<Site> = f.sites.iter().filter_map(|s| v.site(f.pid, s)).collect();
    let locations: Vec<Value> = sites.iter().map(|s| location(s, opts)).collect();
    let mut r = json!({
        "ruleId": f.kind.as_str(),
        "ruleIndex": rule_index,
        "level": level,
        "message": {"text": format!("{}.", finding_message(f))},
        "locations": locations,
        "partialFingerprints": {FINGERPRINT: fingerprint(f)},
        "properties": {
            "pid": f.pid,
            "map": f.map,
            "instance": f.instance,
            "goroutines": f.goroutines,
            "count": f.count,
            "instances": f.instances,
        },
    });
    // Two goroutines at two sites: the second is where the other one was.
    if f.kind != FindingKind::SharedMap && sites.len() > 1 {
        let other = f.goroutines.get(1).map(|g| format!("goroutine {g}")).unwrap_or_else(|| "the other goroutine".into());
        let related: Vec<Value> = (sites.iter().enumerate().skip(1))
            .map(|(i, s)| {
                let mut l = location(s, opts);
                l["id"] = json!(i);
                l["message"] = json!({"text": format!("Where {other} accessed the map.")});
                l
            })
            .collect();
        r["relatedLocations"] = json!(related);
    }
    r
}

fn location(s: &Site, opts: &Options) -> Value {
    let mut artifact = json!({});
    match relative(&s.file, opts) {
        Some(rel) => {
            artifact["uri"] = json!(utf8_percent_encode(&rel, PATH).to_string());
            artifact["uriBaseId"] = json!(ROOT_ID);
        }
        None if s.file.starts_with('/') => artifact["uri"] = json!(file_uri(&s.file)),
        // A -trimpath name (`example.com/app/main.go`): a relative reference.
        None => artifact["uri"] = json!(utf8_percent_encode(&s.file, PATH).to_string()),
    }
    json!({
        "physicalLocation": {"artifactLocation": artifact, "region": {"startLine": s.line.max(1)}},
        "logicalLocations": [{"fullyQualifiedName": s.function, "kind": "function"}],
    })
}

/// `file` relative to the source root: by path, or for a -trimpath build by
/// the module path its go.mod declares.
fn relative(file: &str, opts: &Options) -> Option<String> {
    let root = opts.source_root.as_ref()?;
    if let Ok(rel) = std::path::Path::new(file).strip_prefix(root) {
        return Some(rel.to_string_lossy().into_owned());
    }
    let module = opts.module.as_deref()?;
    file.strip_prefix(module)?.strip_prefix('/').map(str::to_string)
}

fn file_uri(path: &str) -> String {
    format!("file://{}", utf8_percent_encode(path, PATH))
}

fn pascal(kind: &str) -> String {
    kind.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// Kind, type and sites: the same map race found in two runs is one alert.
/// FNV-1a (64 bits), written out so that the value never depends on a
/// library's hasher, which may change between versions.
fn fingerprint(f: &FindingReport) -> String {
    let mut sites = f.sites.clone();
    sites.sort();
    sites.dedup();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [f.kind.as_str(), f.type_name.as_deref().unwrap_or("")].into_iter().chain(sites.iter().map(String::as_str));
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Gate;
    use crate::output::formats::tests::report;

    fn sarif(opts: &Options) -> Value {
        let r = report();
        serde_json::from_slice(&render(&View::new(&r, &Gate::default()), opts)).unwrap()
    }

    #[test]
    fn one_result_per_finding_with_rule_level_and_sites() {
        let s = sarif(&Options::default());
        assert_eq!(s["version"], "2.1.0");
        let run = &s["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), ["overlapping_writes", "read_during_write", "shared_map", "iterate_during_write", "growing_map"]);
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        let ov = &results[0];
        assert_eq!((ov["ruleId"].as_str(), ov["ruleIndex"].as_u64(), ov["level"].as_str()), (Some("overlapping_writes"), Some(0), Some("error")));
        let text = ov["message"]["text"].as_str().unwrap();
        assert!(text.contains("goroutines 22 and 21"), "{text}");
        let loc = &ov["locations"][1]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "file:///src/app/pkg/b.go");
        assert_eq!(loc["region"]["startLine"], 7);
        assert_eq!(ov["relatedLocations"][0]["id"], 1);
        assert_eq!(ov["relatedLocations"][0]["physicalLocation"]["region"]["startLine"], 7);
        assert!(ov["relatedLocations"][0]["message"]["text"].as_str().unwrap().contains("goroutine 21"));
        assert_eq!(results[1]["level"], "note");
        assert!(results[1].get("relatedLocations").is_none());
    }

    #[test]
    fn source_root_makes_paths_relative() {
        let opts = Options { source_root: Some("/src/app".into()), module: None };
        let s = sarif(&opts);
        let run = &s["runs"][0];
        assert_eq!(run["originalUriBaseIds"]["SRCROOT"]["uri"], "file:///src/app/");
        let a = &run["results"][0]["locations"][1]["physicalLocation"]["artifactLocation"];
        assert_eq!((a["uri"].as_str(), a["uriBaseId"].as_str()), (Some("pkg/b.go"), Some("SRCROOT")));
        // -trimpath names map onto the checkout through the module path.
        let opts = Options { source_root: Some("/co".into()), module: Some("example.com/app".into()) };
        assert_eq!(relative("example.com/app/pkg/b.go", &opts).as_deref(), Some("pkg/b.go"));
        assert_eq!(relative("example.com/other/b.go", &opts), None);
    }

    #[test]
    fn fingerprints_ignore_what_changes_between_runs() {
        let r = report();
        let a = &r.findings[0];
        let mut b = a.clone();
        (b.pid, b.map, b.goroutines, b.count) = (99, "0xdead".into(), vec![1, 2], 7);
        b.sites.reverse();
        assert_eq!(fingerprint(a), fingerprint(&b));
        b.type_name = Some("map[int]int".into());
        assert_ne!(fingerprint(a), fingerprint(&b));
        assert_ne!(fingerprint(&r.findings[0]), fingerprint(&r.findings[1]));
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(file_uri("/a b/c#d.go"), "file:///a%20b/c%23d.go");
        assert_eq!(pascal("overlapping_writes"), "OverlappingWrites");
    }
}
