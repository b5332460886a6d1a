//! The Go function table (`runtime.pclntab`, the `.gopclntab` section):
//! function names and entry PCs, and PC → file:line, present even in
//! stripped binaries because the runtime itself needs it for tracebacks.
//!
//! Layout of Go 1.18+ (magic 0xfffffff0 / 0xfffffff1), from golang/go
//! src/runtime/symtab.go and src/debug/gosym/pclntab.go:
//! a `pcHeader`, then funcnametab, cutab, filetab, pctab and the functab
//! (`nfunc+1` pairs of text-relative entry offset and `_func` offset,
//! followed by the `_func` records). All offsets are checked against the
//! region they index, so a damaged table yields `None`, never a panic.

use std::ops::Range;

use super::elf::ElfImage;
use super::read::{self, us};

pub(crate) const MAGIC_GO118: u32 = 0xffff_fff0;
pub(crate) const MAGIC_GO120: u32 = 0xffff_fff1;
const HEADER_LEN: usize = 72;
/// `_func` fixed part; the pcdata and funcdata offset arrays follow it.
const FUNC_LEN: usize = 44;
/// Symbol and file names longer than this are damage, not names.
const MAX_NAME: usize = 64 * 1024;

pub(crate) const PCDATA_INL_TREE_INDEX: u32 = 2;
pub(crate) const FUNCDATA_INL_TREE: u32 = 3;

pub(crate) struct Pclntab {
    /// Link-time address of the `pcHeader`: what moduledata points to.
    pub vaddr: u64,
    pub min_lc: u8,
    pub nfunc: usize,
    /// `pcHeader.textStart`; zero since Go 1.26, which dropped the field.
    pub header_text_start: u64,
    pub funcname_offset: u64,
    pub pcln_offset: u64,
    /// Base of the text-relative entry offsets: `moduledata.text` when known.
    pub text: u64,
    funcnametab: Range<usize>,
    cutab: Range<usize>,
    filetab: Range<usize>,
    pctab: Range<usize>,
    functab: Range<usize>,
}

/// One `_func` record, with the fields `gobin` uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Func {
    pub entry: u64,
    pub end: u64,
    /// File offset of the `_func` record.
    off: usize,
    name_off: i32,
    pcfile: u32,
    pcln: u32,
    npcdata: u32,
    cu_offset: u32,
    nfuncdata: u8,
}

impl Pclntab {
    /// Parses the header at file offset `start`, trusting at most `len`
    /// bytes to belong to the table.
    pub fn parse(data: &[u8], start: usize, len: usize, vaddr: u64) -> Result<Self, String> {
        let tab = read::bytes(data, start, len).ok_or("table lies outside the file")?;
        let magic = read::u32_at(tab, 0).ok_or("truncated header")?;
        if magic != MAGIC_GO120 && magic != MAGIC_GO118 {
            return Err(format!(
                "unknown pclntab magic {magic:#x} (Go 1.18+ writes 0xfffffff0/0xfffffff1)"
            ));
        }
        let hdr = read::bytes(tab, 0, HEADER_LEN).ok_or("truncated header")?;
        let (pad1, pad2, min_lc, ptr_size) = (hdr[4], hdr[5], hdr[6], hdr[7]);
        if pad1 != 0 || pad2 != 0 || !matches!(min_lc, 1 | 2 | 4) {
            return Err("damaged header".into());
        }
        if ptr_size != 8 {
            return Err(format!(
                "pointer size {ptr_size}; only 64-bit binaries are supported"
            ));
        }
        let field = |i: usize| read::u64_at(hdr, 8 * i).unwrap_or(u64::MAX);
        let nfunc = us(field(1)).ok_or("function count out of range")?;
        let offsets = [field(4), field(5), field(6), field(7), field(8)];
        // The linker writes the regions in this order; each ends where the
        // next begins, the functab at the end of the table.
        let mut bounds = Vec::with_capacity(6);
        let mut prev = HEADER_LEN;
        for o in offsets {
            let o = us(o)
                .filter(|&o| o >= prev && o <= len)
                .ok_or("table offsets out of order or out of range")?;
            bounds.push(o);
            prev = o;
        }
        bounds.push(len);
        let abs = |i: usize| -> Option<Range<usize>> {
            Some(start.checked_add(*bounds.get(i)?)?..start.checked_add(*bounds.get(i + 1)?)?)
        };
        let (Some(funcnametab), Some(cutab), Some(filetab), Some(pctab), Some(functab)) =
            (abs(0), abs(1), abs(2), abs(3), abs(4))
        else {
            return Err("table offsets out of range".into());
        };
        let ftab_len = nfunc
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .ok_or("function count out of range")?;
        if ftab_len > functab.len() {
            return Err(format!("function count {nfunc} does not fit the table"));
        }
        Ok(Self {
            vaddr,
            min_lc,
            nfunc,
            header_text_start: field(3),
            funcname_offset: field(4),
            pcln_offset: field(8),
            text: field(3),
            funcnametab,
            cutab,
            filetab,
            pctab,
            functab,
        })
    }

    /// Finds the table: by section name, by symbol, else by scanning the
    /// data segments for a header that parses (section headers can be gone).
    pub fn locate(img: &ElfImage, data: &[u8]) -> Option<Result<Self, String>> {
        for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
            if let Some(s) = img.section(name).filter(|s| !s.nobits && s.size > 0) {
                let r = us(s.offset)
                    .zip(us(s.size))
                    .ok_or_else(|| "section out of range".to_string())
                    .and_then(|(o, l)| Self::parse(data, o, l, s.addr));
                return Some(r);
            }
        }
        let by_symbol = img
            .symbols
            .get("runtime.pclntab")
            .and_then(|&addr| Self::at_vaddr(img, data, addr));
        if let Some(r) = by_symbol {
            return Some(Ok(r));
        }
        for seg in img.segments.iter().filter(|s| !s.executable) {
            let Some(bytes) = img.tail(data, seg.vaddr) else {
                continue;
            };
            let mut off = 0usize;
            while let Some(w) = bytes.get(off..off.saturating_add(8)) {
                if w.len() < 8 {
                    break;
                }
                let magic = read::u32_at(w, 0).unwrap_or(0);
                let plausible = (magic == MAGIC_GO120 || magic == MAGIC_GO118)
                    && w[4] == 0
                    && w[5] == 0
                    && w[7] == 8;
                let found = plausible
                    .then(|| Self::at_vaddr(img, data, seg.vaddr.saturating_add(off as u64)))
                    .flatten()
                    .filter(|r| r.nfunc > 0);
                if let Some(r) = found {
                    return Some(Ok(r));
                }
                off = off.checked_add(8)?;
            }
        }
        None
    }

    fn at_vaddr(img: &ElfImage, data: &[u8], vaddr: u64) -> Option<Self> {
        let start = us(img.vaddr_to_offset(vaddr)?)?;
        let len = img.tail(data, vaddr)?.len();
        Self::parse(data, start, len, vaddr).ok()
    }

    fn ftab(&self, data: &[u8], i: usize) -> Option<(u32, u32)> {
        let at = self.functab.start.checked_add(i.checked_mul(8)?)?;
        if at.checked_add(8)? > self.functab.end {
            return None;
        }
        Some((read::u32_at(data, at)?, read::u32_at(data, at + 4)?))
    }

    pub fn func(&self, data: &[u8], i: usize) -> Option<Func> {
        if i >= self.nfunc {
            return None;
        }
        let (entry_off, func_off) = self.ftab(data, i)?;
        let (end_off, _) = self.ftab(data, i + 1)?;
        let off = self.functab.start.checked_add(us(u64::from(func_off))?)?;
        if off.checked_add(FUNC_LEN)? > self.functab.end {
            return None;
        }
        let rec = read::bytes(data, off, FUNC_LEN)?;
        Some(Func {
            entry: self.text.checked_add(u64::from(entry_off))?,
            end: self.text.checked_add(u64::from(end_off))?,
            off,
            name_off: read::i32_at(rec, 4)?,
            pcfile: read::u32_at(rec, 20)?,
            pcln: read::u32_at(rec, 24)?,
            npcdata: read::u32_at(rec, 28)?,
            cu_offset: read::u32_at(rec, 32)?,
            nfuncdata: read::u8_at(rec, 43)?,
        })
    }

    /// The function containing `pc`, by binary search over the sorted functab.
    pub fn find(&self, data: &[u8], pc: u64) -> Option<Func> {
        let rel = u32::try_from(pc.checked_sub(self.text)?).ok()?;
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ftab(data, mid)?.0 <= rel {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let f = self.func(data, lo.checked_sub(1)?)?;
        (pc >= f.entry && pc < f.end).then_some(f)
    }

    pub fn funcs<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = Func> + 'a {
        (0..self.nfunc).filter_map(move |i| self.func(data, i))
    }

    fn name_in<'a>(&self, data: &'a [u8], region: &Range<usize>, off: u64) -> Option<&'a [u8]> {
        read::cstr(data.get(region.clone())?, us(off)?, MAX_NAME)
    }

    /// The raw name bytes: comparing them avoids an allocation per function.
    pub fn func_name_bytes<'a>(&self, data: &'a [u8], f: &Func) -> Option<&'a [u8]> {
        self.name_in(data, &self.funcnametab, u64::try_from(f.name_off).ok()?)
    }

    pub fn func_name(&self, data: &[u8], f: &Func) -> Option<String> {
        self.name_at(data, f.name_off)
    }

    /// A name in funcnametab (also what inline-tree entries point to).
    pub fn name_at(&self, data: &[u8], name_off: i32) -> Option<String> {
        let s = self.name_in(data, &self.funcnametab, u64::try_from(name_off).ok()?)?;
        Some(String::from_utf8_lossy(s).into_owned())
    }

    /// Decodes a pc-value table (golang/go runtime `pcvalue`/`step`): pairs
    /// of zig-zag value delta and pc delta in `min_lc` units, starting from
    /// value -1 at the entry.
    pub fn pcvalue(&self, data: &[u8], f: &Func, table: u32, target: u64) -> Option<i32> {
        if table == 0 || target < f.entry {
            return None;
        }
        let pctab = data.get(self.pctab.clone())?;
        let mut pos = us(u64::from(table))?;
        let mut pc = f.entry;
        let mut val: i32 = -1;
        let mut first = true;
        loop {
            let uvdelta = read::uvarint(pctab, &mut pos)?;
            if uvdelta == 0 && !first {
                return None;
            }
            first = false;
            let uv = uvdelta as u32;
            let delta = (uv >> 1) as i32 ^ -((uv & 1) as i32);
            val = val.wrapping_add(delta);
            let pcdelta = read::uvarint(pctab, &mut pos)?;
            pc = pc.checked_add(pcdelta.checked_mul(u64::from(self.min_lc))?)?;
            if target < pc {
                return Some(val);
            }
        }
    }

    pub fn line(&self, data: &[u8], f: &Func, pc: u64) -> Option<i32> {
        self.pcvalue(data, f, f.pcln, pc)
    }

    pub fn file(&self, data: &[u8], f: &Func, pc: u64) -> Option<String> {
        let fileno = u32::try_from(self.pcvalue(data, f, f.pcfile, pc)?).ok()?;
        let idx = u64::from(f.cu_offset).checked_add(u64::from(fileno))?;
        let at = self.cutab.start.checked_add(us(idx.checked_mul(4)?)?)?;
        if at.checked_add(4)? > self.cutab.end {
            return None;
        }
        let file_off = read::u32_at(data, at)?;
        if file_off == u32::MAX {
            return None;
        }
        self.name_in(data, &self.filetab, u64::from(file_off))
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// Value of pcdata table `idx` at `pc`.
    pub fn pcdata(&self, data: &[u8], f: &Func, idx: u32, pc: u64) -> Option<i32> {
        if idx >= f.npcdata {
            return None;
        }
        let at = f
            .off
            .checked_add(FUNC_LEN)?
            .checked_add(us(u64::from(idx) * 4)?)?;
        let table = read::u32_at(data, at)?;
        self.pcvalue(data, f, table, pc)
    }

    /// Offset of funcdata `idx` from `moduledata.gofunc`.
    pub fn funcdata(&self, data: &[u8], f: &Func, idx: u32) -> Option<u32> {
        if idx >= u32::from(f.nfuncdata) {
            return None;
        }
        let slots = u64::from(f.npcdata).checked_add(u64::from(idx))?;
        let at = f
            .off
            .checked_add(FUNC_LEN)?
            .checked_add(us(slots.checked_mul(4)?)?)?;
        read::u32_at(data, at).filter(|&o| o != u32::MAX)
    }
}
