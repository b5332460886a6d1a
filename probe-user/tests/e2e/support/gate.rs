//! The root gate: whether a test may run, and the record that it did.
//!
//! Every test of this binary goes through [`enter`] (by `root_test!` or
//! `user_test!`), which appends the test's name — as `--list` prints it —
//! to [`RAN_FILE`]. `cargo xtask test` lists the binary's tests under the
//! same filter and fails unless every one of them is in the file: a skipped
//! root test, a test that bypassed the macros, or a filter that matched
//! nothing cannot pass.

use std::io::Write as _;

use super::fixtures;

/// Relative to the workspace root; xtask reads it (same constant there).
pub const RAN_FILE: &str = "target/e2e-tests-ran.txt";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Needs {
    Root,
    Anyone,
}

/// Root tests must run, not skip (`cargo xtask test`, CI).
pub fn required() -> bool {
    std::env::var("MAPAUDIT_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1")
}

/// `module` is `module_path!()` of the test (`e2e::core`), `test` its
/// function name. Returns the name when the test may run.
pub fn enter(module: &str, test: &'static str, needs: Needs) -> Option<&'static str> {
    let listed = match module.split_once("::") {
        Some((_, rest)) => format!("{rest}::{test}"),
        None => test.to_string(),
    };
    if needs == Needs::Root && !super::is_root() {
        assert!(!required(), "{listed}: root end-to-end test cannot run without root (MAPAUDIT_REQUIRE_ROOT_TESTS=1)");
        eprintln!("\n*** SKIPPED {listed}: needs root (run `sudo -E cargo xtask test`) ***\n");
        return None;
    }
    let path = fixtures::workspace_root().join(RAN_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{listed}: recording that it ran in {}: {e}", path.display()));
    // One write per line: O_APPEND keeps lines of parallel tests whole.
    f.write_all(format!("{listed}\n").as_bytes()).expect("recording the test");
    Some(test)
}
