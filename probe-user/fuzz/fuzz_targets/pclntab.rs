//! `cargo fuzz run pclntab`: see `mapaudit_fuzz::harness::pclntab`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapaudit_fuzz::harness::pclntab(data));
