//! The fuzz entry points, one per target, shared by the cargo-fuzz binaries
//! (`fuzz_targets/*.rs`) and the regression test
//! (`probe-user/tests/fuzz_regressions.rs`, which includes this file by
//! path): keep it to `std`, `mapaudit` and `serde_json`.
//!
//! The `gobin` parsers (buildinfo, pclntab, type names, DWARF offsets) are
//! crate-private, so the structure-aware targets reach them through
//! `GoBinary::parse`: they take a real Go binary (a fixture built with
//! `mapaudit::fixtures`) and overwrite the bytes of one structure with the
//! fuzzer's, so every input gets past the ELF and into the parser under test.
//!
//! Input formats:
//! - `gobin_parse`: a whole file.
//! - `buildinfo`, `pclntab`, `types`: a *window*: `flags: u8`, `offset: u32`
//!   (little-endian), then bytes written over the structure at
//!   `offset % its length`, clipped to its end. `flags` bit 0 hides the
//!   section header's name (forcing the segment scans), bits 1.. pick the
//!   base binary.
//! - `dwarf_offsets`: `flags: u8`, five `u16` lengths of `.debug_abbrev`,
//!   `.debug_str`, `.debug_line_str`, `.debug_str_offsets`, `.debug_addr`,
//!   those sections, then `.debug_info` (the rest). They are appended to a
//!   stripped base binary. `flags` bits 0–5 mark the sections (in that order,
//!   info last) `SHF_COMPRESSED`, bit 6 picks the oldest Go as base, bit 7
//!   names them `.zdebug_*`.
//! - `version_inference`: a window (as above) over a build *without*
//!   `.go.buildinfo` (so every parse infers the version): `flags` bit 0
//!   picks the base (newest or oldest Go), `flags >> 1` the region: the
//!   `.gopclntab`, `runtime.schedinit`'s code, the `runtime.buildVersion`
//!   string, or the data words around its string header.
//! - `report_parse`: a report file, as `mapaudit check` reads it.

#![allow(dead_code, reason = "the regression test uses a subset")]

use std::sync::OnceLock;

use fixtures::Variant;
use mapaudit::gobin::GoBinary;

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target, by name, for drivers that replay stored inputs.
pub const TARGETS: &[(&str, Target)] = &[
    ("gobin_parse", gobin_parse),
    ("buildinfo", buildinfo),
    ("pclntab", pclntab),
    ("types", types),
    ("dwarf_offsets", dwarf_offsets),
    ("report_parse", report_parse),
    ("version_inference", version_inference),
];

/// Bases of `version_inference`: stripped builds with `.go.buildinfo` removed.
pub const INFER_BASES: &[(&str, Variant)] = &[
    (fixtures::GO_NEWEST, Variant::StrippedNoBuildInfo),
    (fixtures::GO_OLDEST, Variant::StrippedNoBuildInfo),
];

/// The base binaries of the structure-aware targets, in `flags >> 1` order.
pub const BASES: &[(&str, Variant)] = &[
    (fixtures::GO_NEWEST, Variant::Stripped),
    (fixtures::GO_NEWEST, Variant::PieStripped),
    (fixtures::GO_OLDEST, Variant::Stripped),
];

// ---------------------------------------------------------------- targets

/// Whole-file parse, then every accessor.
pub fn gobin_parse(data: &[u8]) {
    if let Ok(bin) = GoBinary::parse(data.to_vec()) {
        exercise(&bin, data);
    }
}

/// `.go.buildinfo`: the Go version (and so everything version-dependent).
pub fn buildinfo(data: &[u8]) {
    patched_section(data, ".go.buildinfo");
}

/// `.gopclntab`: function table, names, PC → file:line, inline tree.
pub fn pclntab(data: &[u8]) {
    patched_section(data, ".gopclntab");
}

/// The type region (`moduledata.types .. etypes`), then type names of
/// addresses in and around the overwritten window.
pub fn types(data: &[u8]) {
    let Some((flags, offset, payload)) = window(data) else {
        return;
    };
    // Only the newest Go's bases: they name moduledata (`.go.module`), which
    // gives the type region without a scan.
    let Some(base) = base(usize::from(flags >> 1) % 2) else {
        return;
    };
    let Some((types, etypes)) = base.types else {
        return;
    };
    let (Some(start), Some(len)) = (base.vaddr_to_offset(types), us(etypes - types)) else {
        return;
    };
    let mut file = base.data.clone();
    let at = usize::try_from(offset).unwrap_or(0) % len.max(1);
    overwrite(&mut file, start, len, at, payload);
    let Ok(bin) = GoBinary::parse(file) else {
        return;
    };
    let _ = bin.has_moduledata();
    let win = types + at as u64;
    let mut addrs: Vec<u64> = (0..payload.len().min(512) as u64 + 48)
        .step_by(8)
        .map(|k| win + k)
        .collect();
    addrs.extend([win.wrapping_sub(8), win.wrapping_sub(48), win + 1, types, etypes - 1, etypes.saturating_sub(48), etypes]);
    // Words of the payload as offsets into the region (how names are linked).
    addrs.extend(payload.chunks_exact(4).take(32).map(|w| types + u64::from(u32_le(w)) % (etypes - types)));
    for a in addrs {
        let _ = bin.type_name(a);
        let _ = bin.type_name(a); // cached
    }
}

/// The version of a binary without build info: `runtime.buildVersion`
/// found through `runtime.schedinit`, checked against the pclntab, the map
/// implementation and the offsets table (`gobin::infer`).
pub fn version_inference(data: &[u8]) {
    let Some((flags, offset, payload)) = window(data) else {
        return;
    };
    let Some((base, regions)) = infer_base(usize::from(flags & 1)) else {
        return;
    };
    let Some(&(start, len)) = regions.get(usize::from(flags >> 1) % regions.len().max(1)) else {
        return;
    };
    let mut file = base.data.clone();
    let at = usize::try_from(offset).unwrap_or(0) % len.max(1);
    overwrite(&mut file, start, len, at, payload);
    if let Ok(bin) = GoBinary::parse(file) {
        // Whatever was inferred must be a version mapaudit supports.
        let _ = bin.version_source();
        exercise(&bin, payload);
    }
}

/// Runtime struct offsets from synthetic DWARF sections.
pub fn dwarf_offsets(data: &[u8]) {
    if let Some(bin) = dwarf_binary(data) {
        let _ = bin.has_dwarf();
        let _ = bin.runtime_offsets();
    }
}

/// The base binary with the DWARF sections of a `dwarf_offsets` input.
pub fn dwarf_binary(data: &[u8]) -> Option<GoBinary> {
    let (&flags, rest) = data.split_first()?;
    const NAMES: [&str; 6] = ["abbrev", "str", "line_str", "str_offsets", "addr", "info"];
    let (lens, mut rest) = rest.split_first_chunk::<10>()?;
    let mut blobs: Vec<&[u8]> = Vec::with_capacity(NAMES.len());
    for len in lens.chunks_exact(2) {
        let len = usize::from(u16::from_le_bytes([len[0], len[1]])).min(rest.len());
        let (blob, tail) = rest.split_at(len);
        blobs.push(blob);
        rest = tail;
    }
    blobs.push(rest);
    let base = base(if flags & 0x40 != 0 { 2 } else { 0 })?;
    let prefix = if flags & 0x80 != 0 { ".zdebug_" } else { ".debug_" };
    let extra: Vec<NewSection> = NAMES
        .iter()
        .zip(blobs)
        .enumerate()
        .map(|(i, (name, blob))| NewSection {
            name: format!("{prefix}{name}"),
            data: blob,
            compressed: flags & (1 << i) != 0,
        })
        .collect();
    GoBinary::parse(with_sections(&base.data, &extra)?).ok()
}

/// What `mapaudit check` does with a file: parse and validate it, then gate
/// on it with every gate enabled. A report that parses must also survive
/// being written and read back.
pub fn report_parse(data: &[u8]) {
    let Ok(report) = mapaudit::output::gate::parse_report(data, "fuzz.json") else {
        return;
    };
    let _ = mapaudit::output::gate::evaluate(&report, gate_all());
    let Ok(json) = serde_json::to_vec(&report) else {
        return;
    };
    if let Err(e) = mapaudit::output::gate::parse_report(&json, "roundtrip.json") {
        panic!("a parsed report does not read back after writing: {e}");
    }
}

// ---------------------------------------------------------------- helpers

/// Calls every accessor of a parsed binary, on addresses from its own
/// function table and from `hint` (the fuzz input).
pub fn exercise(bin: &GoBinary, hint: &[u8]) {
    let _ = (bin.go_version(), bin.version(), bin.is_pie());
    let _ = (bin.has_dwarf(), bin.has_symtab(), bin.has_moduledata());
    let _ = bin.runtime_offsets();
    let _ = bin.routines();
    let funcs = bin.functions();
    let mut addrs = Vec::new();
    let step = (funcs.len() / 32).max(1);
    // `function(name)` is a linear scan: a few names only.
    for f in [funcs.first(), funcs.get(funcs.len() / 2), funcs.last()].into_iter().flatten() {
        let _ = bin.function(&f.name);
    }
    for f in funcs.iter().step_by(step) {
        let _ = bin.code(f);
        let mid = f.entry + (f.end.wrapping_sub(f.entry)) / 2;
        addrs.extend([f.entry, f.entry.wrapping_add(1), mid, f.end, f.end.wrapping_sub(1)]);
    }
    for seg in bin.load_segments() {
        addrs.extend([seg.vaddr, seg.vaddr.wrapping_add(seg.filesz), seg.vaddr.wrapping_add(seg.memsz)]);
        // Words of the input as offsets into each segment: lands on types.
        if let Some(n) = seg.filesz.checked_add(1) {
            addrs.extend(hint.chunks_exact(4).rev().take(8).map(|w| seg.vaddr.wrapping_add(u64::from(u32_le(w)) % n)));
        }
    }
    addrs.extend(hint.chunks_exact(8).take(4).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default())));
    addrs.extend([0, 1, u64::MAX]);
    for a in addrs {
        let _ = bin.symbolize(a);
        let _ = bin.function_at(a);
        let _ = bin.type_name(a & !7);
        let _ = bin.vaddr_to_offset(a);
    }
}

fn gate_all() -> &'static mapaudit::config::Gate {
    use mapaudit::model::FindingKind;
    static GATE: OnceLock<mapaudit::config::Gate> = OnceLock::new();
    GATE.get_or_init(|| mapaudit::config::Gate {
        fail_on: vec![FindingKind::OverlappingWrites, FindingKind::SharedMap, FindingKind::ReadDuringWrite],
        max_writes_per_sec: Some(1.0),
        max_lost_events: Some(0),
    })
}

/// Window targets: overwrite a named section of a base binary, optionally
/// hide its name, then parse and exercise.
fn patched_section(data: &[u8], name: &str) {
    if let Some((bin, payload)) = window_binary(data, name) {
        exercise(&bin, payload);
    }
}

/// A base binary with section `name` overwritten by a window input, parsed;
/// and the window's payload.
pub fn window_binary<'a>(data: &'a [u8], name: &str) -> Option<(GoBinary, &'a [u8])> {
    let (flags, offset, payload) = window(data)?;
    let base = base(usize::from(flags >> 1) % BASES.len())?;
    let sec = base.sections.iter().find(|s| s.name == name)?;
    let mut file = base.data.clone();
    let at = usize::try_from(offset).unwrap_or(0) % sec.size.max(1);
    overwrite(&mut file, sec.offset, sec.size, at, payload);
    if flags & 1 != 0 {
        // sh_name = 0: the section is still there, but nameless.
        if let Some(name) = file.get_mut(sec.header..sec.header + 4) {
            name.copy_from_slice(&[0; 4]);
        }
    }
    Some((GoBinary::parse(file).ok()?, payload))
}

fn window(data: &[u8]) -> Option<(u8, u32, &[u8])> {
    let (&flags, rest) = data.split_first()?;
    let (offset, payload) = rest.split_first_chunk::<4>()?;
    Some((flags, u32::from_le_bytes(*offset), payload))
}

/// Writes `payload` at `at` into the `len` bytes at `start`, clipped.
fn overwrite(file: &mut [u8], start: usize, len: usize, at: usize, payload: &[u8]) {
    let n = payload.len().min(len.saturating_sub(at));
    if let Some(dst) = file.get_mut(start + at..start + at + n) {
        dst.copy_from_slice(&payload[..n]);
    }
}

fn u32_le(w: &[u8]) -> u32 {
    u32::from_le_bytes(w.try_into().unwrap_or_default())
}

fn us(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

// ---------------------------------------------------------------- bases

/// A fixture binary and where its structures are.
pub struct Base {
    pub data: Vec<u8>,
    pub sections: Vec<Sec>,
    segments: Vec<(u64, u64, u64)>,
    /// `moduledata.types`, `moduledata.etypes`, when `.go.module` names it.
    pub types: Option<(u64, u64)>,
}

/// One ELF section header.
pub struct Sec {
    pub name: String,
    /// File offset of the section header itself.
    pub header: usize,
    pub offset: usize,
    pub size: usize,
    pub addr: u64,
}

impl Base {
    fn load(version: &str, variant: Variant) -> Result<Self, String> {
        let path = fixtures::build("writers", version, variant).map_err(|e| format!("{e:#}"))?;
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sections = sections(&data).ok_or_else(|| format!("{}: unreadable section headers", path.display()))?;
        let segments = segments(&data).ok_or_else(|| format!("{}: unreadable program headers", path.display()))?;
        let mut base = Self { data, sections, segments, types: None };
        // The stripped base has no symbols to say where moduledata keeps
        // `types`/`etypes`; the same version's plain build does.
        if let Some(offsets) = types_offsets(version)? {
            base.types = base.module_types(offsets);
        }
        Ok(base)
    }

    fn vaddr_to_offset(&self, vaddr: u64) -> Option<usize> {
        let &(v, off, _) = self.segments.iter().find(|&&(v, _, filesz)| vaddr >= v && vaddr - v < filesz)?;
        us(off + (vaddr - v))
    }

    /// `types`/`etypes` from moduledata at `offsets` (see [`types_offsets`]),
    /// checked to be a range inside the file.
    fn module_types(&self, (types_at, etypes_at): (usize, usize)) -> Option<(u64, u64)> {
        let m = self.sections.iter().find(|s| s.name == ".go.module")?;
        let word = |off: usize| -> Option<u64> {
            let b = self.data.get(m.offset + off..m.offset + off + 8)?;
            Some(u64::from_le_bytes(b.try_into().ok()?))
        };
        let (t, e) = (word(types_at)?, word(etypes_at)?);
        let ok = t < e && self.vaddr_to_offset(t).is_some() && self.vaddr_to_offset(e - 1).is_some();
        ok.then_some((t, e))
    }
}

/// Where Go `version`'s `runtime.moduledata` keeps `types` and `etypes`
/// (byte offsets), derived rather than assumed: in the version's plain
/// build, the first words of `runtime.firstmoduledata` equal to the
/// linker's `runtime.types` and `runtime.etypes` symbols. `None` when the
/// binary has no `.go.module` section (moduledata is then found by a scan,
/// which the `types` target does not exercise).
pub fn types_offsets(version: &str) -> Result<Option<(usize, usize)>, String> {
    let path = fixtures::build("writers", version, Variant::Plain).map_err(|e| format!("{e:#}"))?;
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let secs = sections(&data).ok_or_else(|| bad("unreadable section headers"))?;
    if !secs.iter().any(|s| s.name == ".go.module") {
        return Ok(None);
    }
    let segs = segments(&data).ok_or_else(|| bad("unreadable program headers"))?;
    let syms = symbols(&data, &secs, &["runtime.firstmoduledata", "runtime.types", "runtime.etypes"]);
    let [Some(md), Some(types), Some(etypes)] = syms else {
        return Err(bad(&format!("symbols firstmoduledata/types/etypes: {syms:?}")));
    };
    let &(v, off, _) = segs.iter().find(|&&(v, _, n)| md >= v && md - v < n).ok_or_else(|| bad("moduledata not in a segment"))?;
    let md_at = us(off + (md - v)).ok_or_else(|| bad("moduledata offset"))?;
    // moduledata is well under 1 KiB in every version.
    let words: Vec<u64> = (0..128).map_while(|i| r64(&data, md_at + 8 * i)).collect();
    let at = |x: u64| words.iter().position(|&w| w == x).map(|i| 8 * i);
    match (at(types), at(etypes)) {
        (Some(t), Some(e)) if t < e => Ok(Some((t, e))),
        other => Err(bad(&format!("types/etypes not found in moduledata: {other:?}"))),
    }
}

/// The values of the named symbols in `.symtab` (Elf64_Sym: name u32, info,
/// other, shndx u16, value u64, size u64), in the order asked.
fn symbols<const N: usize>(d: &[u8], secs: &[Sec], names: &[&str; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    let (Some(symtab), Some(strtab)) =
        (secs.iter().find(|s| s.name == ".symtab"), secs.iter().find(|s| s.name == ".strtab"))
    else {
        return out;
    };
    for at in (symtab.offset..symtab.offset + symtab.size).step_by(24) {
        let (Some(name), Some(value)) = (r32(d, at), r64(d, at + 8)) else { break };
        let Some(name) = d.get(strtab.offset + name as usize..).and_then(|n| n.split(|&c| c == 0).next()) else {
            continue;
        };
        if let Some(i) = names.iter().position(|n| n.as_bytes() == name) {
            out[i] = Some(value);
        }
    }
    out
}

/// The base binary `i` of [`BASES`], built on first use. Panics (a fuzz
/// "crash" with a clear message) when the fixture cannot be built: without
/// it the structure-aware targets test nothing.
pub fn base(i: usize) -> Option<&'static Base> {
    static LOADED: [OnceLock<Base>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let (version, variant) = *BASES.get(i)?;
    let slot = LOADED.get(i)?;
    Some(slot.get_or_init(|| {
        // One `go build -o` at a time.
        let _guard = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
        Base::load(version, variant).unwrap_or_else(|e| {
            panic!(
                "fuzz base binary (writers, Go {version}, {}) unavailable: {e}\n\
                 (`cargo xtask fuzz` builds it; Go toolchains come from `cargo xtask setup`)",
                variant.name()
            )
        })
    }))
}

/// (file offset, length) of the regions `version_inference` overwrites.
pub type Regions = Vec<(usize, usize)>;

/// Base `i` of [`INFER_BASES`] and its regions, built on first use.
pub fn infer_base(i: usize) -> Option<(&'static Base, &'static Regions)> {
    static LOADED: [OnceLock<(Base, Regions)>; 2] = [OnceLock::new(), OnceLock::new()];
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let (version, variant) = *INFER_BASES.get(i)?;
    let (base, regions) = LOADED.get(i)?.get_or_init(|| {
        let _guard = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
        let base = Base::load(version, variant).unwrap_or_else(|e| {
            panic!(
                "fuzz base binary (writers, Go {version}, {}) unavailable: {e}\n\
                 (`cargo xtask fuzz` builds it; Go toolchains come from `cargo xtask setup`)",
                variant.name()
            )
        });
        let regions = infer_regions(&base, version);
        (base, regions)
    });
    Some((base, regions))
}

fn infer_regions(base: &Base, version: &str) -> Regions {
    let mut out = Vec::new();
    if let Some(s) = base.sections.iter().find(|s| s.name == ".gopclntab") {
        out.push((s.offset, s.size.min(1 << 16)));
    }
    if let Ok(bin) = GoBinary::parse(base.data.clone())
        && let Some(f) = bin.function("runtime.schedinit")
        && let (Some(off), Some(len)) = (base.vaddr_to_offset(f.entry), us(f.end - f.entry))
    {
        out.push((off, len));
    }
    // The version string, and the string header that points to it.
    let needle = format!("go{version}");
    let rodata = base.sections.iter().find(|s| s.name == ".rodata");
    let string = rodata.and_then(|r| {
        let bytes = base.data.get(r.offset..r.offset + r.size)?;
        let i = bytes.windows(needle.len()).position(|w| w == needle.as_bytes())?;
        Some((r.offset + i, r.addr + i as u64))
    });
    if let Some((off, vaddr)) = string {
        out.push((off.saturating_sub(64), 128));
        let header = base.data.chunks_exact(8).position(|w| w == vaddr.to_le_bytes());
        if let Some(w) = header {
            out.push(((w * 8).saturating_sub(64), 144));
        }
    }
    out
}

// ---------------------------------------------------------------- ELF

fn rd<const N: usize>(d: &[u8], off: usize) -> Option<[u8; N]> {
    d.get(off..off.checked_add(N)?)?.try_into().ok()
}
fn r16(d: &[u8], off: usize) -> Option<u16> {
    rd(d, off).map(u16::from_le_bytes)
}
fn r32(d: &[u8], off: usize) -> Option<u32> {
    rd(d, off).map(u32::from_le_bytes)
}
fn r64(d: &[u8], off: usize) -> Option<u64> {
    rd(d, off).map(u64::from_le_bytes)
}

const SHDR: usize = 64;
const SHF_COMPRESSED: u64 = 0x800;
const SHT_PROGBITS: u32 = 1;

/// Section headers of a 64-bit little-endian ELF file.
pub fn sections(d: &[u8]) -> Option<Vec<Sec>> {
    let shoff = us(r64(d, 0x28)?)?;
    let shnum = usize::from(r16(d, 0x3c)?);
    let strndx = usize::from(r16(d, 0x3e)?);
    let hdr = |i: usize| shoff + i * SHDR;
    let strtab = us(r64(d, hdr(strndx) + 24)?)?;
    (0..shnum)
        .map(|i| {
            let h = hdr(i);
            let name_at = strtab + us(u64::from(r32(d, h)?))?;
            let name = d.get(name_at..)?.split(|&c| c == 0).next()?;
            Some(Sec {
                name: String::from_utf8_lossy(name).into_owned(),
                header: h,
                offset: us(r64(d, h + 24)?)?,
                size: us(r64(d, h + 32)?)?,
                addr: r64(d, h + 16)?,
            })
        })
        .collect()
}

/// PT_LOAD segments: (vaddr, file offset, file size).
fn segments(d: &[u8]) -> Option<Vec<(u64, u64, u64)>> {
    let phoff = us(r64(d, 0x20)?)?;
    let phentsize = usize::from(r16(d, 0x36)?);
    let phnum = usize::from(r16(d, 0x38)?);
    let mut out = Vec::new();
    for i in 0..phnum {
        let h = phoff + i * phentsize;
        if r32(d, h)? == 1 {
            out.push((r64(d, h + 16)?, r64(d, h + 8)?, r64(d, h + 32)?));
        }
    }
    Some(out)
}

/// A section to append with [`with_sections`].
pub struct NewSection<'a> {
    pub name: String,
    pub data: &'a [u8],
    pub compressed: bool,
}

/// The file with `extra` non-allocated sections appended: their bytes, a new
/// section name table, and a new section header table at the end of the
/// file (the old ones stay, unreferenced). Segments are untouched.
pub fn with_sections(base: &[u8], extra: &[NewSection<'_>]) -> Option<Vec<u8>> {
    let shoff = us(r64(base, 0x28)?)?;
    let shnum = usize::from(r16(base, 0x3c)?);
    let strndx = usize::from(r16(base, 0x3e)?);
    let old_headers = base.get(shoff..shoff + shnum * SHDR)?;
    let str_hdr = strndx * SHDR;
    let str_off = us(r64(old_headers, str_hdr + 24)?)?;
    let str_size = us(r64(old_headers, str_hdr + 32)?)?;

    let mut out = base.to_vec();
    let mut strtab = base.get(str_off..str_off + str_size)?.to_vec();
    let mut headers = old_headers.to_vec();
    for s in extra {
        let name = u32::try_from(strtab.len()).ok()?;
        strtab.extend_from_slice(s.name.as_bytes());
        strtab.push(0);
        out.resize(out.len().next_multiple_of(8), 0);
        let offset = out.len() as u64;
        out.extend_from_slice(s.data);
        let mut h = [0u8; SHDR];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&SHT_PROGBITS.to_le_bytes());
        let flags = if s.compressed { SHF_COMPRESSED } else { 0 };
        h[8..16].copy_from_slice(&flags.to_le_bytes());
        h[24..32].copy_from_slice(&offset.to_le_bytes());
        h[32..40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        h[48..56].copy_from_slice(&1u64.to_le_bytes());
        headers.extend_from_slice(&h);
    }
    let strtab_off = out.len() as u64;
    out.extend_from_slice(&strtab);
    headers[str_hdr + 24..str_hdr + 32].copy_from_slice(&strtab_off.to_le_bytes());
    headers[str_hdr + 32..str_hdr + 40].copy_from_slice(&(strtab.len() as u64).to_le_bytes());
    out.resize(out.len().next_multiple_of(8), 0);
    let new_shoff = out.len() as u64;
    out.extend_from_slice(&headers);
    let new_shnum = u16::try_from(shnum + extra.len()).ok()?;
    out[0x28..0x30].copy_from_slice(&new_shoff.to_le_bytes());
    out[0x3c..0x3e].copy_from_slice(&new_shnum.to_le_bytes());
    Some(out)
}
