//! The ELF container: segments, sections, the few symbols `gobin` wants, and
//! reads by virtual address.
//!
//! Go data structures (buildinfo, moduledata, types) are linked by pointers,
//! i.e. link-time virtual addresses, so every read goes through the PT_LOAD
//! segments rather than section headers, which a stripper may have removed.

use std::collections::HashMap;

use object::Endianness;
use object::elf;
use object::read::elf::{
    ElfFile64, FileHeader as _, ProgramHeader as _, Rela as _, SectionHeader as _, Sym as _,
};

use super::GoBinError;
use super::read;

/// One PT_LOAD segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub executable: bool,
    pub writable: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub name: String,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub nobits: bool,
}

/// Symbols `gobin` looks up by name when a symbol table is present; kept to a
/// fixed list so a binary with a million symbols costs one pass, no map of all.
pub(crate) const WANTED_SYMBOLS: &[&str] = &[
    "runtime.firstmoduledata",
    "runtime.text",
    "runtime.pclntab",
    "runtime.epclntab",
    "go:func.*",
    "go.func.*",
];

// Indices in e_ident.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;

pub(crate) struct ElfImage {
    pub segments: Vec<Segment>,
    pub sections: Vec<Section>,
    pub symbols: HashMap<&'static str, u64>,
    pub has_symtab: bool,
    pub is_pie: bool,
    pub machine: u16,
    /// (where, value) of R_*_RELATIVE relocations, sorted by where. An
    /// externally linked PIE leaves pointers as zero in the file and only the
    /// relocation knows the value; Go's internal linker writes both.
    relative: Vec<(u64, u64)>,
}

impl ElfImage {
    pub fn parse(data: &[u8]) -> Result<Self, GoBinError> {
        if data.get(..4) != Some(&elf::ELFMAG[..]) {
            return Err(GoBinError::NotElf);
        }
        match data.get(EI_CLASS) {
            Some(&elf::ELFCLASS64) => {}
            Some(&elf::ELFCLASS32) => {
                return Err(GoBinError::Unsupported(
                    "32-bit ELF; only 64-bit Go binaries are supported".into(),
                ));
            }
            _ => return Err(GoBinError::BadElf("unknown ELF class".into())),
        }
        if data.get(EI_DATA) != Some(&elf::ELFDATA2LSB) {
            return Err(GoBinError::Unsupported(
                "big-endian ELF; only little-endian Go binaries are supported".into(),
            ));
        }
        let file =
            ElfFile64::<Endianness>::parse(data).map_err(|e| GoBinError::BadElf(e.to_string()))?;
        let endian = file.endian();
        let header = file.elf_header();
        let e_type = header.e_type(endian);
        if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
            return Err(GoBinError::Unsupported(format!(
                "ELF type {e_type} is neither an executable nor a position-independent executable"
            )));
        }

        let mut segments = Vec::new();
        for ph in file.elf_program_headers() {
            if ph.p_type(endian) != elf::PT_LOAD {
                continue;
            }
            let flags = ph.p_flags(endian);
            segments.push(Segment {
                vaddr: ph.p_vaddr(endian),
                memsz: ph.p_memsz(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                executable: flags & elf::PF_X != 0,
                writable: flags & elf::PF_W != 0,
            });
        }
        if segments.is_empty() {
            return Err(GoBinError::BadElf("no loadable (PT_LOAD) segments".into()));
        }
        let file_len = data.len() as u64;
        let past_end =
            |offset: u64, size: u64| offset.checked_add(size).is_none_or(|end| end > file_len);
        if let Some(s) = segments.iter().find(|s| past_end(s.offset, s.filesz)) {
            return Err(GoBinError::BadElf(format!(
                "truncated: the segment at {:#x} needs file bytes up to {:#x}, the file has {file_len:#x}",
                s.vaddr,
                s.offset.saturating_add(s.filesz)
            )));
        }

        let table = file.elf_section_table();
        let mut sections = Vec::new();
        let mut relative = Vec::new();
        let relative_type = match header.e_machine(endian) {
            elf::EM_X86_64 => Some(elf::R_X86_64_RELATIVE),
            elf::EM_AARCH64 => Some(elf::R_AARCH64_RELATIVE),
            _ => None,
        };
        for sh in table.iter() {
            let name = table
                .section_name(endian, sh)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            let section_type = sh.sh_type(endian);
            if section_type != elf::SHT_NOBITS && past_end(sh.sh_offset(endian), sh.sh_size(endian))
            {
                return Err(GoBinError::BadElf(format!(
                    "truncated: section {name} extends past the end of the file ({file_len:#x} bytes)"
                )));
            }
            sections.push(Section {
                name,
                addr: sh.sh_addr(endian),
                offset: sh.sh_offset(endian),
                size: sh.sh_size(endian),
                nobits: section_type == elf::SHT_NOBITS,
            });
            if let (Some(rtype), Ok(Some((relas, _)))) = (relative_type, sh.rela(endian, data)) {
                for r in relas {
                    if r.r_type(endian, false) == rtype {
                        relative.push((r.r_offset(endian), r.r_addend(endian) as u64));
                    }
                }
            }
        }
        relative.sort_unstable();

        let mut symbols = HashMap::new();
        let symtab = file.elf_symbol_table();
        for sym in symtab.iter() {
            let Ok(name) = symtab.symbol_name(endian, sym) else {
                continue;
            };
            if let Some(want) = WANTED_SYMBOLS.iter().find(|w| w.as_bytes() == name) {
                symbols.entry(*want).or_insert(sym.st_value(endian));
            }
        }

        Ok(Self {
            segments,
            sections,
            symbols,
            has_symtab: !symtab.is_empty(),
            is_pie: e_type == elf::ET_DYN,
            machine: header.e_machine(endian),
            relative,
        })
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The file bytes of a section, if it has any.
    pub fn section_data<'a>(&self, data: &'a [u8], name: &str) -> Option<&'a [u8]> {
        let s = self.section(name)?;
        if s.nobits {
            return None;
        }
        read::bytes(data, read::us(s.offset)?, read::us(s.size)?)
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.section(name).is_some_and(|s| s.size > 0)
    }

    fn segment_of(&self, vaddr: u64) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
    }

    /// File offset of a virtual address backed by file bytes.
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        let s = self.segment_of(vaddr)?;
        s.offset.checked_add(vaddr - s.vaddr)
    }

    /// The file bytes from `vaddr` to the end of its segment's file image.
    pub fn tail<'a>(&self, data: &'a [u8], vaddr: u64) -> Option<&'a [u8]> {
        let s = self.segment_of(vaddr)?;
        let start = s.offset.checked_add(vaddr - s.vaddr)?;
        let end = s.offset.checked_add(s.filesz)?;
        data.get(read::us(start)?..read::us(end)?.min(data.len()))
    }

    /// Exactly `len` file bytes at `vaddr`, all within one segment.
    pub fn slice<'a>(&self, data: &'a [u8], vaddr: u64, len: usize) -> Option<&'a [u8]> {
        self.tail(data, vaddr)?.get(..len)
    }

    pub fn u32(&self, data: &[u8], vaddr: u64) -> Option<u32> {
        read::u32_at(self.slice(data, vaddr, 4)?, 0)
    }

    /// A pointer-sized value at `vaddr`, resolved through a RELATIVE
    /// relocation when the file holds zero there.
    pub fn ptr(&self, data: &[u8], vaddr: u64) -> Option<u64> {
        let raw = read::u64_at(self.slice(data, vaddr, 8)?, 0)?;
        if raw != 0 {
            return Some(raw);
        }
        Some(self.relocated(vaddr).unwrap_or(0))
    }

    fn relocated(&self, vaddr: u64) -> Option<u64> {
        let i = self.relative.binary_search_by_key(&vaddr, |r| r.0).ok()?;
        self.relative.get(i).map(|r| r.1)
    }

    #[cfg(test)]
    pub fn relative_relocations(&self) -> &[(u64, u64)] {
        &self.relative
    }

    /// Addresses of relocated words whose value is `target`: where an
    /// externally linked PIE keeps pointers the file itself shows as zero.
    pub fn relocations_to(&self, target: u64) -> impl Iterator<Item = u64> + '_ {
        self.relative
            .iter()
            .filter(move |r| r.1 == target)
            .map(|r| r.0)
    }
}
