//! `cargo fuzz run version_inference`: see `mapaudit_fuzz::harness::version_inference`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapaudit_fuzz::harness::version_inference(data));
