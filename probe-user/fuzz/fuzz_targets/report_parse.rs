//! `cargo fuzz run report_parse`: see `mapaudit_fuzz::harness::report_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapaudit_fuzz::harness::report_parse(data));
