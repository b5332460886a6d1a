//! `cargo fuzz run gobin_parse`: see `mapaudit_fuzz::harness::gobin_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapaudit_fuzz::harness::gobin_parse(data));
