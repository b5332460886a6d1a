//! `cargo fuzz run types`: see `mapaudit_fuzz::harness::types`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapaudit_fuzz::harness::types(data));
