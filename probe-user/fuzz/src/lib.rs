//! Fuzz harnesses for mapaudit's parsers. The entry points live in
//! `harness.rs`, which `probe-user/tests/fuzz_regressions.rs` also includes
//! (by path) to replay the stored crashing inputs under plain `cargo test`.

pub mod harness;
