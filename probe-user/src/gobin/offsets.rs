//! Offsets the BPF probe reads in Go runtime structures: `goid` and `gopc`
//! in `runtime.g`, and the write-in-progress byte of the map header.
//!
//! DWARF, when the binary kept it, is the authority: it describes the exact
//! toolchain that built the binary. Stripped binaries fall back to a table
//! per Go minor version. Each table entry was checked against the DWARF of a
//! real build (see the tests); 1.22 is not in the fixture matrix and is
//! derived from the runtime sources: 1.23 only inserted `g.syscallbp`
//! (8 bytes before `goid`) relative to 1.21, 1.22 did not have it.

use std::borrow::Cow;

use gimli::{AttributeValue, EndianSlice, LittleEndian};
use object::read::elf::ElfFile64;
use object::{Endianness, Object as _, ObjectSection as _};

/// Where a [`RuntimeOffsets`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSource {
    /// Read from the binary's own DWARF.
    Dwarf,
    /// The per-version table, for a version it covers.
    VersionTable,
    /// The newest table entry, used for a Go newer than the table covers
    /// and without DWARF to confirm it: may be wrong.
    VersionTableGuess,
}

/// Offsets packed into the probe's cookie (`probe_common::uprobe::Cookie`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeOffsets {
    /// `runtime.g.goid`.
    pub goid: u16,
    /// `runtime.g.gopc`: where the goroutine was created.
    pub gopc: u16,
    /// Map header byte that is non-zero while a write is in progress:
    /// `maps.Map.writing` (Go 1.24+ swiss maps) or `hmap.flags`.
    pub writing_off: u8,
    /// Mask for that byte: 0xff for `writing`, `hashWriting` (4) for `flags`.
    pub writing_mask: u8,
    pub source: OffsetSource,
}

/// (minor, g.goid, g.gopc) for Go 1.x on 64-bit (amd64 and arm64 agree).
const G_TABLE: &[(u32, u16, u16)] = &[
    (21, 152, 280),
    (22, 152, 280),
    (23, 160, 288),
    (24, 160, 288),
    (25, 152, 280),
    (26, 152, 288),
    (27, 152, 288),
];

pub(crate) const OLDEST_MINOR: u32 = 21;
pub(crate) const NEWEST_MINOR: u32 = 27;

const SWISS_MINOR: u32 = 24;
const MAP_WRITING: (u8, u8) = (34, 0xff);
const HMAP_FLAGS: (u8, u8) = (8, 4);

/// Decompressed DWARF above this is not a Go binary's; refuse the allocation.
const MAX_DWARF_SECTION: u64 = 1 << 30;

/// Table entry for Go 1.`minor`. `classic_maps` says the binary links the
/// pre-swiss map implementation (`GOEXPERIMENT=noswissmap`, possible in
/// 1.24 and 1.25); `None` means the version's default.
pub(crate) fn from_table(minor: u32, classic_maps: Option<bool>) -> Option<RuntimeOffsets> {
    let (source, minor) = if minor > NEWEST_MINOR {
        (OffsetSource::VersionTableGuess, NEWEST_MINOR)
    } else {
        (OffsetSource::VersionTable, minor)
    };
    let &(_, goid, gopc) = G_TABLE.iter().find(|e| e.0 == minor)?;
    let classic = classic_maps.unwrap_or(minor < SWISS_MINOR);
    let (writing_off, writing_mask) = if classic { HMAP_FLAGS } else { MAP_WRITING };
    Some(RuntimeOffsets {
        goid,
        gopc,
        writing_off,
        writing_mask,
        source,
    })
}

/// Reads the offsets from DWARF; `None` when DWARF is absent, unreadable, or
/// lacks one of the members.
pub(crate) fn from_dwarf(data: &[u8], minor: u32) -> Option<RuntimeOffsets> {
    let file = ElfFile64::<Endianness>::parse(data).ok()?;
    let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, ()> {
        let Some(section) = file.section_by_name(id.name()) else {
            return Ok(Cow::Borrowed(&[][..]));
        };
        let compressed = section.compressed_data().map_err(|_| ())?;
        if compressed.uncompressed_size > MAX_DWARF_SECTION {
            return Err(());
        }
        compressed.decompress().map_err(|_| ())
    };
    let sections = gimli::DwarfSections::load(load).ok()?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));

    let mut found = Members::default();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        scan_unit(&dwarf, &unit, &mut found);
        if found.complete() {
            break;
        }
    }
    let goid = u16::try_from(found.goid?).ok()?;
    let gopc = u16::try_from(found.gopc?).ok()?;
    // Which map implementation is linked is what DWARF describes; prefer
    // the one the version defaults to (GOEXPERIMENT can switch 1.24/1.25).
    let writing = found
        .writing
        .and_then(|o| u8::try_from(o).ok())
        .map(|o| (o, MAP_WRITING.1));
    let flags = found
        .hmap_flags
        .and_then(|o| u8::try_from(o).ok())
        .map(|o| (o, HMAP_FLAGS.1));
    let (writing_off, writing_mask) = if minor >= SWISS_MINOR {
        writing.or(flags)?
    } else {
        flags.or(writing)?
    };
    Some(RuntimeOffsets {
        goid,
        gopc,
        writing_off,
        writing_mask,
        source: OffsetSource::Dwarf,
    })
}

#[derive(Default)]
struct Members {
    goid: Option<u64>,
    gopc: Option<u64>,
    writing: Option<u64>,
    hmap_flags: Option<u64>,
}

impl Members {
    fn complete(&self) -> bool {
        self.goid.is_some()
            && self.gopc.is_some()
            && (self.writing.is_some() || self.hmap_flags.is_some())
    }

    fn slot(&mut self, strukt: &[u8], member: &[u8]) -> Option<&mut Option<u64>> {
        match (strukt, member) {
            (b"runtime.g", b"goid") => Some(&mut self.goid),
            (b"runtime.g", b"gopc") => Some(&mut self.gopc),
            (b"internal/runtime/maps.Map", b"writing") => Some(&mut self.writing),
            (b"runtime.hmap", b"flags") => Some(&mut self.hmap_flags),
            _ => None,
        }
    }
}

const WANTED_STRUCTS: &[&[u8]] = &[b"runtime.g", b"internal/runtime/maps.Map", b"runtime.hmap"];

type Slice<'a> = EndianSlice<'a, LittleEndian>;

fn scan_unit<'a>(
    dwarf: &gimli::Dwarf<Slice<'a>>,
    unit: &gimli::Unit<Slice<'a>>,
    found: &mut Members,
) {
    let name_of = |e: &gimli::DebuggingInformationEntry<Slice<'a>>| -> Option<&'a [u8]> {
        let v = e.attr_value(gimli::DW_AT_name)?;
        dwarf.attr_string(unit, v).ok().map(|s| s.slice())
    };
    // The struct being read and its depth; its members are one level below.
    let mut current: Option<(&'a [u8], isize)> = None;
    let mut entries = unit.entries();
    while let Ok(Some(entry)) = entries.next_dfs() {
        let depth = entry.depth();
        if current.is_some_and(|(_, d)| depth <= d) {
            current = None;
        }
        match entry.tag() {
            gimli::DW_TAG_structure_type => {
                if let Some(name) = name_of(entry).filter(|n| WANTED_STRUCTS.contains(n)) {
                    current = Some((name, depth));
                }
            }
            gimli::DW_TAG_member => {
                let Some((strukt, d)) = current else { continue };
                if depth.checked_sub(d) != Some(1) {
                    continue;
                }
                let Some(member) = name_of(entry) else {
                    continue;
                };
                if let Some(slot @ None) = found.slot(strukt, member) {
                    *slot = entry
                        .attr_value(gimli::DW_AT_data_member_location)
                        .and_then(member_offset);
                }
            }
            _ => {}
        }
    }
}

fn member_offset(v: AttributeValue<Slice<'_>>) -> Option<u64> {
    if let AttributeValue::Exprloc(expr) = v {
        // Old producers encode the offset as `DW_OP_plus_uconst N`.
        let mut r = expr.0;
        let op = gimli::Reader::read_u8(&mut r).ok()?;
        if op != gimli::DW_OP_plus_uconst.0 {
            return None;
        }
        return gimli::Reader::read_uleb128(&mut r).ok();
    }
    v.udata_value()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_supported_versions() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let o = from_table(minor, None).unwrap();
            assert_eq!(o.source, OffsetSource::VersionTable);
        }
        assert_eq!(from_table(20, None), None);
        let guess = from_table(30, None).unwrap();
        assert_eq!(guess.source, OffsetSource::VersionTableGuess);
        assert_eq!((guess.goid, guess.gopc), (152, 288));
        let noswiss = from_table(24, Some(true)).unwrap();
        assert_eq!((noswiss.writing_off, noswiss.writing_mask), (8, 4));
    }
}
