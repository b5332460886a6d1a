//! Reports and truths: every report a test reads goes through [`read_json`]
//! (or [`parse_report`]), which validates it against the published JSON
//! Schema — one helper, so no report a test writes escapes validation.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use super::fixtures;

/// Reads a report and validates it against the published JSON Schema.
pub fn read_json(path: &Path) -> Value {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading report {}: {e}", path.display()));
    parse_report(&data, &path.display().to_string())
}

/// Parses report bytes (e.g. `--json -` output) and validates them.
pub fn parse_report(data: &[u8], what: &str) -> Value {
    let v: Value = serde_json::from_slice(data).unwrap_or_else(|e| panic!("parsing report {what}: {e}"));
    assert_valid_report(&v);
    v
}

/// The schema's errors for `v` (empty: valid).
pub fn schema_errors(v: &Value) -> Vec<String> {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(include_str!("../../../schema/mapaudit-v1.schema.json")).expect("schema parses");
        jsonschema::validator_for(&schema).expect("schema compiles")
    });
    validator.iter_errors(v).map(|e| format!("{e} at {}", e.instance_path)).collect()
}

pub fn assert_valid_report(v: &Value) {
    let errors = schema_errors(v);
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

/// The row of `rows` whose `field` is `v`.
pub fn find<'a>(rows: &'a Value, field: &str, v: &Value) -> &'a Value {
    rows.as_array().and_then(|r| r.iter().find(|r| r[field] == *v)).unwrap_or_else(|| panic!("no row with {field} = {v}"))
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
