//! `cargo fuzz run dwarf_offsets`: see `mapaudit_fuzz::harness::dwarf_offsets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapaudit_fuzz::harness::dwarf_offsets(data));
