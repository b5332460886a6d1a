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

pub(crate) fn locate(img: &ElfImage, data: &[u8], pcln: &Pclntab, minor: u32) -> Option<ModuleData> {
    let mut candidates: Vec<u64> = Vec::new();
    candidates.extend(img.symbols.get("runtime.firstmoduledata"));
    candidates.extend(img.section(".go.module").map(|s| s.addr));
    for c in &candidates {
        if let Some(md) = validate(img, data, pcln, minor, *c) {
            return Some(md);
        }
    }
    for seg in img.segments.iter().filter(|s| s.writable) {
        let Some(bytes) = img.tail(data, seg.vaddr) else { continue };
        let needle = pcln.vaddr.to_le_bytes();
        // moduledata is pointer-aligned; step by 8 from an aligned start.
        let skew = (8 - (seg.vaddr % 8) as usize) % 8;
        let Some(aligned) = bytes.get(skew..) else { continue };
        for (i, w) in aligned.chunks_exact(8).enumerate() {
            if w == needle {
                let at = (i as u64)
                    .checked_mul(8)
                    .and_then(|o| o.checked_add(skew as u64))
                    .and_then(|o| seg.vaddr.checked_add(o));
                if let Some(md) = at.and_then(|a| validate(img, data, pcln, minor, a)) {
                    return Some(md);
                }
            }
        }
    }
    let relocated: Vec<u64> = img.relocations_to(pcln.vaddr).collect();
    relocated
        .into_iter()
        .find_map(|a| validate(img, data, pcln, minor, a))
}

fn validate(img: &ElfImage, data: &[u8], pcln: &Pclntab, minor: u32, addr: u64) -> Option<ModuleData> {
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
