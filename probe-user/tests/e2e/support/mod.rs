//! The end-to-end test kit: declaring a test (`root_test!`, `user_test!`:
//! the root gate in one place), running mapaudit and the fixtures
//! ([`proc`]), reading and validating reports ([`report`]), and the
//! `writers` fixture's truth ([`writers`]).
#![allow(dead_code, unused_imports, reason = "each area uses a subset")]

pub mod gate;
pub mod proc;
pub mod report;
pub mod writers;

use std::path::PathBuf;

pub use fixtures::{self, Variant};
pub use nix::sys::signal::Signal;
pub use proc::{
    DEADLINE, Finished, Proc, mapaudit, record, run, signal, spawn_fixture, spawn_waiting, start_mapaudit, start_mapaudit_cmd,
    with_exec_stop_timeout,
};
pub use report::{assert_valid_report, find, line_of, process, read_json, source_path, truth, truths};
pub use writers::{assert_goids_plausible, assert_writers_truth, on_thread};

/// A test that needs root (it loads eBPF programs or acts for other users).
/// Not root: a loud skip under plain `cargo test`, a failure under `cargo
/// xtask test` (MAPAUDIT_REQUIRE_ROOT_TESTS=1). Either way the test's name
/// is recorded when it runs, and `cargo xtask test` fails unless every
/// test of this binary was.
///
/// ```ignore
/// root_test! {
///     /// What it proves.
///     fn some_claim(name) { /* `name`: the function's name */ }
/// }
/// ```
macro_rules! root_test {
    ($($(#[$meta:meta])* fn $name:ident($ctx:pat) $body:block)*) => {$(
        $(#[$meta])*
        #[test]
        fn $name() {
            let Some($ctx) = $crate::support::gate::enter(module_path!(), stringify!($name), $crate::support::gate::Needs::Root)
            else {
                return;
            };
            $body
        }
    )*};
}

/// A test of this binary that runs as any user (bad input rejected before
/// anything is attached, the gate on a stored report): recorded like a
/// root test so that the set of tests that ran can be checked whole.
macro_rules! user_test {
    ($($(#[$meta:meta])* fn $name:ident($ctx:pat) $body:block)*) => {$(
        $(#[$meta])*
        #[test]
        fn $name() {
            let Some($ctx) = $crate::support::gate::enter(module_path!(), stringify!($name), $crate::support::gate::Needs::Anyone)
            else {
                return;
            };
            $body
        }
    )*};
}

/// Root: checked through nix rather than an `unsafe` libc call.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The mapaudit under test: `$MAPAUDIT_BIN` (`cargo xtask test` sets it to
/// the release build, the one that ships), else this test build's. When
/// root tests are required (CI), the variable must be set: the suite
/// proves the binary that ships, never a debug build by accident.
pub fn mapaudit_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var("MAPAUDIT_BIN") {
        Ok(b) => {
            assert!(std::path::Path::new(&b).is_file(), "MAPAUDIT_BIN={b} is not a file");
            b
        }
        Err(_) => {
            assert!(!gate::required(), "MAPAUDIT_REQUIRE_ROOT_TESTS=1 needs MAPAUDIT_BIN (`cargo xtask test` sets it to the release build)");
            env!("CARGO_BIN_EXE_mapaudit").to_string()
        }
    })
}

/// A scratch directory per test, emptied. Under `sudo -E cargo xtask test`
/// it belongs to the sudo user: mapaudit writes its reports as that user.
pub fn scratch(name: &str) -> PathBuf {
    let d = fixtures::workspace_root().join("target/e2e").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    let sudo = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    if is_root()
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

/// The newest Go's plain build of fixture `name` (most tests need no other).
pub fn fixture(name: &str) -> PathBuf {
    fixtures::build(name, fixtures::GO_NEWEST, Variant::Plain).unwrap_or_else(|e| panic!("building fixture {name}: {e:#}"))
}

/// A path as the `&str` mapaudit's argument lists take.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Ids of the BPF programs a running process holds (from its fdinfo).
pub fn prog_ids_of(pid: u32) -> Vec<u32> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|info| info.lines().find_map(|l| l.strip_prefix("prog_id:")).and_then(|v| v.trim().parse().ok()))
        .collect()
}

/// How many of `ids` are still loaded in the kernel.
pub fn still_loaded(ids: &[u32]) -> usize {
    aya::programs::loaded_programs().filter_map(Result::ok).filter(|p| ids.contains(&p.id())).count()
}
