//! Writes the generated part of the seed corpora (`corpus/<target>/gen-*`,
//! `corpus/gobin_parse/fixture-*`; git ignores both): the fixture binaries
//! themselves, windows over their real buildinfo/pclntab/types, synthetic
//! DWARF and reports. Run by `cargo xtask fuzz` before fuzzing;
//! `cargo run --example seeds` by hand.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use gimli::write::{
    AttributeValue, DwarfUnit, EndianVec, Expression, Sections, UnitEntryId,
};
use gimli::{Encoding, Format, LittleEndian};
use fixtures::Variant;
use mapaudit::gobin::GoBinary;
use mapaudit_fuzz::harness::{self, BASES};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn corpus(target: &str) -> Res<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    // Old generated seeds go: the fixtures may have changed.
    for e in std::fs::read_dir(&dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("gen-") || name.starts_with("fixture-") {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(dir)
}

fn window(flags: u8, offset: usize, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![flags];
    v.extend_from_slice(&(offset as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn main() -> Res<()> {
    let mut counts = Vec::new();

    // gobin_parse: whole fixture binaries (the bases, plus one with symbols
    // and DWARF).
    let dir = corpus("gobin_parse")?;
    let mut n = 0;
    let mut all: Vec<(&str, Variant)> = BASES.to_vec();
    all.push((fixtures::GO_NEWEST, Variant::Plain));
    for (version, variant) in all {
        let path = fixtures::build("writers", version, variant).map_err(|e| format!("{e:#}"))?;
        std::fs::copy(&path, dir.join(format!("fixture-go{version}-{}", variant.name())))?;
        n += 1;
    }
    counts.push(("gobin_parse", n));

    // buildinfo, pclntab: windows over the real sections of every base.
    let (bi, pc) = (corpus("buildinfo")?, corpus("pclntab")?);
    let (mut nb, mut np) = (0, 0);
    for i in 0..BASES.len() {
        let base = harness::base(i).ok_or("no base")?;
        let flags = (i as u8) << 1;
        let sec = |name: &str| base.sections.iter().find(|s| s.name == name).ok_or(format!("no {name}"));
        let b = sec(".go.buildinfo")?;
        let bytes = &base.data[b.offset..b.offset + b.size];
        for hide in [0, 1] {
            std::fs::write(bi.join(format!("gen-base{i}-hide{hide}")), window(flags | hide, 0, bytes))?;
            nb += 1;
        }
        let p = sec(".gopclntab")?;
        let tab = &base.data[p.offset..p.offset + p.size];
        // The header, and the start of each region it points to.
        let mut starts = vec![0usize];
        for field in 4..=8 {
            let o = u64::from_le_bytes(tab[8 * field..8 * field + 8].try_into()?) as usize;
            starts.push(o.min(tab.len()));
        }
        starts.push(tab.len().saturating_sub(1024));
        for (k, &s) in starts.iter().enumerate() {
            let payload = &tab[s..(s + 2048).min(tab.len())];
            std::fs::write(pc.join(format!("gen-base{i}-region{k}")), window(flags, s, payload))?;
            np += 1;
        }
        std::fs::write(pc.join(format!("gen-base{i}-hidden")), window(flags | 1, 0, &tab[..512]))?;
        np += 1;
    }
    counts.push(("buildinfo", nb));
    counts.push(("pclntab", np));

    // types: real type descriptors and their names, of the two newest bases.
    let ty = corpus("types")?;
    let mut nt = 0;
    for i in 0..2 {
        let base = harness::base(i).ok_or("no base")?;
        let Some((types, etypes)) = base.types else {
            eprintln!("seeds: base {i} has no .go.module; no types seeds");
            continue;
        };
        let bin = GoBinary::parse(base.data.clone())?;
        let mut picked = 0;
        let mut addr = types;
        while addr + 48 <= etypes && picked < 12 {
            let name = bin.type_name(addr);
            if let Some(name) = name.filter(|n| n.starts_with("map[") || n.starts_with("main.")) {
                let at = (addr - types) as usize;
                let off = harness_offset(base, addr).ok_or("type outside file")?;
                let desc = &base.data[off..off + 64];
                std::fs::write(ty.join(format!("gen-base{i}-type{picked}")), window((i as u8) << 1, at, desc))?;
                // ...and its name, which the descriptor points to.
                let str_off = i32::from_le_bytes(desc[40..44].try_into()?) as u64;
                if let Some(noff) = harness_offset(base, types + str_off) {
                    let nm = &base.data[noff..noff + (name.len() + 3).min(256)];
                    std::fs::write(ty.join(format!("gen-base{i}-name{picked}")), window((i as u8) << 1, str_off as usize, nm))?;
                    nt += 1;
                }
                picked += 1;
                nt += 1;
            }
            addr += 8;
        }
    }
    counts.push(("types", nt));

    // dwarf_offsets: synthetic DWARF with the structs and members read.
    let dw = corpus("dwarf_offsets")?;
    let mut nd = 0;
    for (name, input) in dwarf_seeds()? {
        std::fs::write(dw.join(format!("gen-{name}")), input)?;
        nd += 1;
    }
    counts.push(("dwarf_offsets", nd));

    // report_parse: what `record` writes for an empty session.
    let rp = corpus("report_parse")?;
    let rep = mapaudit::output::report::build(&mapaudit::model::Model::new(), "2026-01-01T00:00:00Z", 1.0);
    std::fs::write(rp.join("gen-empty.json"), serde_json::to_vec_pretty(&rep)?)?;
    counts.push(("report_parse", 1));

    for (t, n) in counts {
        eprintln!("seeds: {t}: {n} generated");
    }
    Ok(())
}

fn harness_offset(base: &harness::Base, vaddr: u64) -> Option<usize> {
    // Through the section table: every type and name lies in a section.
    let s = base
        .sections
        .iter()
        .find(|s| s.addr != 0 && vaddr >= s.addr && vaddr < s.addr + s.size as u64)?;
    Some(s.offset + (vaddr - s.addr) as usize)
}

/// (name, dwarf_offsets input) pairs.
fn dwarf_seeds() -> Res<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (version, inline, exprloc, swiss, hmap) in [
        (4u16, false, false, true, false),
        (4, true, true, true, false),
        (5, false, false, true, true),
        (4, false, true, false, true),
        (2, true, true, false, true),
    ] {
        let s = dwarf(version, inline, exprloc, swiss, hmap)?;
        let tag = format!("v{version}{}{}{}{}", if inline { "-inline" } else { "" }, if exprloc { "-exprloc" } else { "" }, if swiss { "-swiss" } else { "" }, if hmap { "-hmap" } else { "" });
        out.push((tag.clone(), input(0, &s)));
        if version == 4 && !inline {
            // ELF SHF_COMPRESSED (zlib) info and abbrev; GNU .zdebug_.
            let mut c = s.clone();
            c[0] = chdr_zlib(&s[0])?;
            c[5] = chdr_zlib(&s[5])?;
            out.push((format!("{tag}-compressed"), input(0b10_0001, &c)));
            let mut z = s.clone();
            for blob in z.iter_mut() {
                *blob = zdebug(blob)?;
            }
            out.push((format!("{tag}-zdebug"), input(0x80, &z)));
            out.push((format!("{tag}-oldest"), input(0x40, &s)));
        }
    }
    Ok(out)
}

/// flags, five u16 lengths, the sections, info last.
fn input(flags: u8, s: &[Vec<u8>; 6]) -> Vec<u8> {
    let mut v = vec![flags];
    for blob in &s[..5] {
        v.extend_from_slice(&(blob.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
    }
    for blob in s {
        v.extend_from_slice(blob);
    }
    v
}

fn zlib(data: &[u8]) -> Res<Vec<u8>> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data)?;
    Ok(e.finish()?)
}

fn chdr_zlib(data: &[u8]) -> Res<Vec<u8>> {
    let mut v = Vec::new();
    v.extend_from_slice(&1u32.to_le_bytes()); // ELFCOMPRESS_ZLIB
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    v.extend_from_slice(&1u64.to_le_bytes());
    v.extend_from_slice(&zlib(data)?);
    Ok(v)
}

fn zdebug(data: &[u8]) -> Res<Vec<u8>> {
    let mut v = b"ZLIB".to_vec();
    v.extend_from_slice(&(data.len() as u64).to_be_bytes());
    v.extend_from_slice(&zlib(data)?);
    Ok(v)
}

/// [abbrev, str, line_str, str_offsets, addr, info] of one compile unit
/// describing the runtime structs `from_dwarf` reads, as Go's linker does
/// (plus variants: inline names, `DW_OP_plus_uconst` locations).
fn dwarf(version: u16, inline: bool, exprloc: bool, swiss: bool, hmap: bool) -> Res<[Vec<u8>; 6]> {
    let encoding = Encoding { format: Format::Dwarf32, version, address_size: 8 };
    let mut d = DwarfUnit::new(encoding);
    let root = d.unit.root();
    let name = |d: &mut DwarfUnit, s: &str| {
        if inline { AttributeValue::String(s.as_bytes().to_vec()) } else { AttributeValue::StringRef(d.strings.add(s)) }
    };
    let v = name(&mut d, "runtime");
    d.unit.get_mut(root).set(gimli::DW_AT_name, v);
    let mut structs: Vec<(&str, Vec<(&str, u64)>)> =
        vec![("runtime.g", vec![("stack", 0), ("goid", 152), ("schedlink", 160), ("gopc", 288)])];
    if swiss {
        structs.push(("internal/runtime/maps.Map", vec![("used", 0), ("writing", 34)]));
    }
    if hmap {
        structs.push(("runtime.hmap", vec![("count", 0), ("flags", 8)]));
    }
    // A decoy with the same member names, not to be read.
    structs.insert(0, ("runtime.m", vec![("goid", 1), ("gopc", 2)]));
    for (sname, members) in structs {
        let s: UnitEntryId = d.unit.add(root, gimli::DW_TAG_structure_type);
        let v = name(&mut d, sname);
        d.unit.get_mut(s).set(gimli::DW_AT_name, v);
        d.unit.get_mut(s).set(gimli::DW_AT_byte_size, AttributeValue::Udata(400));
        for (mname, off) in members {
            let m = d.unit.add(s, gimli::DW_TAG_member);
            let v = name(&mut d, mname);
            d.unit.get_mut(m).set(gimli::DW_AT_name, v);
            let loc = if exprloc {
                let mut e = Expression::new();
                e.op_plus_uconst(off);
                AttributeValue::Exprloc(e)
            } else {
                AttributeValue::Udata(off)
            };
            d.unit.get_mut(m).set(gimli::DW_AT_data_member_location, loc);
        }
    }
    let mut sections = Sections::new(EndianVec::new(LittleEndian));
    d.write(&mut sections)?;
    Ok([
        sections.debug_abbrev.slice().to_vec(),
        sections.debug_str.slice().to_vec(),
        sections.debug_line_str.slice().to_vec(),
        Vec::new(),
        Vec::new(),
        sections.debug_info.slice().to_vec(),
    ])
}
