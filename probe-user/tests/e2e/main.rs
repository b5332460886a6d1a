//! mapaudit's end-to-end tests: one binary, a module per area, the kit in
//! `support`. Most tests need root (they load eBPF programs) and are
//! declared with `root_test!`; the rest with `user_test!`. `cargo xtask
//! test` runs them against the release build and checks that every test
//! listed here ran (see `support::gate`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "in tests a failed step is a failed test")]

#[macro_use]
mod support;

mod bpfkernel;
mod bpfmaps;
mod budget;
mod churn;
mod cli;
mod core;
mod corpus;
mod errors;
mod findings;
mod gate;
mod health;
mod lifecycle;
mod losses;
mod privileges;
mod reads;
mod real;
mod schema;
mod security;
mod serve;
mod share;
mod soak;
mod tui;
