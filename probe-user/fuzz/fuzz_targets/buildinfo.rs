//! `cargo fuzz run buildinfo`: see `mapaudit_fuzz::harness::buildinfo`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapaudit_fuzz::harness::buildinfo(data));
