//! Replays every input the fuzzers ever crashed on (and a few seeds) through
//! the same entry points as `cargo xtask fuzz`: none may panic. Inputs live
//! in `tests/fuzz-regressions/<target>/`; the structure-aware targets patch
//! a fixture binary, built here like the gobin tests build them (needs the
//! Go toolchains of `cargo xtask setup`; no root).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "in tests a failed step is a failed test")]

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

/// The stored inputs of `target`: every target has at least one (a replay
/// of nothing proves nothing), and a missing folder is a failure.
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (every fuzz target keeps its inputs there)", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    assert!(!v.is_empty(), "{}: no stored input: store at least a seed", dir.display());
    v.sort();
    v
}

fn replay(target: &str) {
    let run = harness::TARGETS
        .iter()
        .find(|t| t.0 == target)
        .unwrap_or_else(|| panic!("no harness for {target}"))
        .1;
    let mut failed = Vec::new();
    let files = inputs(target);
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", path.display()));
        }
    }
    assert!(failed.is_empty(), "{target}: {} of {} stored inputs panic:\n{}", failed.len(), files.len(), failed.join("\n"));
}

#[test]
fn gobin_parse() {
    replay("gobin_parse");
}

#[test]
fn buildinfo() {
    replay("buildinfo");
}

#[test]
fn pclntab() {
    replay("pclntab");
}

#[test]
fn types() {
    replay("types");
}

#[test]
fn dwarf_offsets() {
    replay("dwarf_offsets");
}

#[test]
fn report_parse() {
    replay("report_parse");
}

#[test]
fn version_inference() {
    replay("version_inference");
}

/// The inference target reaches what it means to: its bases parse with an
/// inferred version, every region is found, and damage in each region (a
/// deterministic sweep, as the fuzzer would start) is an error or a parse,
/// never a panic.
#[test]
fn version_inference_regions_are_reached_and_damage_never_panics() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (i, (version, _)) in harness::INFER_BASES.iter().enumerate() {
        let (base, regions) = harness::infer_base(i).unwrap();
        let bin = mapaudit::gobin::GoBinary::parse(base.data.clone()).unwrap();
        assert_eq!(bin.version_source(), mapaudit::gobin::VersionSource::Inferred, "go{version}");
        assert_eq!(regions.len(), 4, "go{version}: pclntab, schedinit, string, header: {regions:?}");
        for k in 0..regions.len() {
            for round in 0..40 {
                let mut input = vec![(i as u8) | ((k as u8) << 1)];
                input.extend_from_slice(&(next() as u32).to_le_bytes());
                let n = 1 + (next() % 24) as usize;
                input.extend((0..n).map(|_| if round % 4 == 0 { b"go1.2"[(next() % 5) as usize] } else { next() as u8 }));
                harness::version_inference(&input);
            }
        }
    }
}

/// Every stored input belongs to a target that replays it, and every
/// target has stored inputs.
#[test]
fn every_stored_input_has_a_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    for (target, _) in harness::TARGETS {
        assert!(!inputs(target).is_empty(), "{target}");
    }
    for e in std::fs::read_dir(&dir).expect("tests/fuzz-regressions").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            assert!(harness::TARGETS.iter().any(|t| t.0 == name), "{name}: not a fuzz target");
        }
    }
}

/// The harness reaches what it means to: the DWARF target's committed seed
/// (sections appended to a stripped binary) is read as DWARF, and an
/// unchanged window over the real pclntab still parses.
#[test]
fn harness_reaches_the_parsers() {
    let seed = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/dwarf_offsets/seed-v4-swiss"))
        .expect("committed DWARF seed");
    let bin = harness::dwarf_binary(&seed).expect("base binary with synthetic DWARF parses");
    assert!(bin.has_dwarf());
    let o = bin.runtime_offsets().expect("offsets");
    assert_eq!(o.source, mapaudit::gobin::OffsetSource::Dwarf);
    assert_eq!((o.goid, o.gopc, o.writing_off, o.writing_mask), (152, 288, 34, 0xff));

    let base = harness::base(0).expect("base 0");
    let tab = base.sections.iter().find(|s| s.name == ".gopclntab").expect(".gopclntab");
    let mut input = vec![1u8]; // base 0, name hidden: found by the scan
    input.extend_from_slice(&0u32.to_le_bytes());
    input.extend_from_slice(&base.data[tab.offset..tab.offset + 256]);
    let (bin, _) = harness::window_binary(&input, ".gopclntab").expect("unchanged pclntab parses");
    assert!(bin.functions().len() > 100);
    assert!(!bin.routines().is_empty());

    // The `types` target returns early unless the base's moduledata gives
    // the type region (at offsets derived from the same version's plain
    // build, never assumed): both of its bases must, and the region must
    // hold the fixture's map types. Every version's derivation either finds
    // both words or has no `.go.module` to look in.
    for v in fixtures::GO_VERSIONS {
        let found = harness::types_offsets(v).unwrap_or_else(|e| panic!("Go {v}: {e}"));
        assert!(found.is_some() || *v != fixtures::GO_NEWEST, "Go {v}: the newest Go names moduledata in .go.module");
    }
    for i in 0..2 {
        let base = harness::base(i).expect("base");
        let (types, etypes) = base.types.unwrap_or_else(|| panic!("base {i}: moduledata's types/etypes not found: the types target would test nothing"));
        let bin = mapaudit::gobin::GoBinary::parse(base.data.clone()).expect("base parses");
        let named = (types..etypes).step_by(8).filter_map(|a| bin.type_name(a)).any(|n| n == "map[string][]string");
        assert!(named, "base {i}: no map[string][]string type in the region the types target overwrites");
    }
}
