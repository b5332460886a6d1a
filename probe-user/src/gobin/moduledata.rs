//! `runtime.firstmoduledata`: the runtime's index of this binary's tables.
//! `gobin` needs three things from it that the pclntab does not carry:
//! `text` (the base of function entry offsets — `pcHeader.textStart` is zero
//! since Go 1.26 and `.text` is wrong for cgo builds), `types`/`etypes`
//! (type names are offsets from `types`) and `gofunc` (funcdata, e.g. the
//! inline tree, are offsets from it).
//!
//! Stripped binaries have no symbol for it, so, like GoReSym and redress, we
//! find it as the word in a data segment that points at the pclntab header
//! and check that its neighbouring slices point into the same table.

use super::elf::ElfImage;
use super::pclntab::Pclntab;

// Field offsets of moduledata on 64-bit (golang/go src/runtime/symtab.go).
// They are the same from Go 1.20 through 1.27 up to `types`; Go 1.27 added
// `typedesclen` after `types` and `itaboffset`/`itabsize` before `rodata`.
const OFF_FUNCNAMETAB: u64 = 8;
const OFF_PCLNTABLE: u64 = 104;
const OFF_TEXT: u64 = 176;
const OFF_ETEXT: u64 = 184;
const OFF_TYPES: u64 = 296;

#[derive(Clone, Copy, Debug)]
pub(crate) struct ModuleData {
    pub addr: u64,
    pub text: u64,
    pub etext: u64,
    pub types: u64,
    pub etypes: u64,
    pub gofunc: u64,
}

/// (etypes, gofunc) field offsets for a Go minor version.
fn layout(minor: u32) -> (u64, u64) {
    if minor >= 27 { (312, 344) } else { (304, 320) }
}

pub(crate) fn locate(
    img: &ElfImage,
    data: &[u8],
    pcln: &Pclntab,
    minor: u32,
) -> Option<ModuleData> {
    let named = [
        img.symbols.get("runtime.firstmoduledata").copied(),
        img.section(".go.module").map(|s| s.addr),
    ];
    named
        .into_iter()
        .flatten()
        .find_map(|a| validate(img, data, pcln, minor, a))
        .or_else(|| scan(img, data, pcln, minor))
}

/// Finds moduledata without names: the pointer-aligned word in a writable
/// segment (or a relocation) whose value is the pclntab header address.
pub(crate) fn scan(img: &ElfImage, data: &[u8], pcln: &Pclntab, minor: u32) -> Option<ModuleData> {
    let needle = pcln.vaddr.to_le_bytes();
    for seg in img.segments.iter().filter(|s| s.writable) {
        let Some(bytes) = img.tail(data, seg.vaddr) else {
            continue;
        };
        let skew = (8 - (seg.vaddr % 8) as usize) % 8;
        let Some(aligned) = bytes.get(skew..) else {
            continue;
        };
        let found = aligned
            .chunks_exact(8)
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .filter_map(|(i, _)| {
                seg.vaddr
                    .checked_add((i as u64).checked_mul(8)?.checked_add(skew as u64)?)
            })
            .find_map(|a| validate(img, data, pcln, minor, a));
        if found.is_some() {
            return found;
        }
    }
    img.relocations_to(pcln.vaddr)
        .find_map(|a| validate(img, data, pcln, minor, a))
}

fn validate(
    img: &ElfImage,
    data: &[u8],
    pcln: &Pclntab,
    minor: u32,
    addr: u64,
) -> Option<ModuleData> {
    let at = |off: u64| img.ptr(data, addr.checked_add(off)?);
    if at(0)? != pcln.vaddr
        || at(OFF_FUNCNAMETAB)? != pcln.vaddr.checked_add(pcln.funcname_offset)?
        || at(OFF_PCLNTABLE)? != pcln.vaddr.checked_add(pcln.pcln_offset)?
    {
        return None;
    }
    let (off_etypes, off_gofunc) = layout(minor);
    let md = ModuleData {
        addr,
        text: at(OFF_TEXT)?,
        etext: at(OFF_ETEXT)?,
        types: at(OFF_TYPES)?,
        etypes: at(off_etypes)?,
        gofunc: at(off_gofunc)?,
    };
    let sane = md.text < md.etext
        && md.types < md.etypes
        && img.vaddr_to_offset(md.text).is_some()
        && img.vaddr_to_offset(md.types).is_some();
    sane.then_some(md)
}
