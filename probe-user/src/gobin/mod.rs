//! Go binary inspection, without running or tracing the binary: Go version,
//! the map-write routines and where to attach to them, runtime struct
//! offsets, PC → function/file:line, and type names.
//!
//! Everything works on stripped binaries (`-ldflags=-s -w`), because it
//! relies on what the Go runtime itself keeps for tracebacks and reflection
//! (`.go.buildinfo`, the pclntab, moduledata); DWARF and the symbol table
//! are used when present. Only 64-bit little-endian ELF is supported.
//!
//! Parsers here see untrusted bytes (they are fuzzed): every read is bounds
//! checked and malformed input yields an error or `None`.

mod buildinfo;
mod elf;
mod infer;
mod moduledata;
mod offsets;
mod pclntab;
mod prologue;
mod prologue_arm64;
mod read;
#[cfg(test)]
mod tests;
mod types;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use probe_common::uprobe::routine;

pub use elf::Segment;
pub use infer::VersionSource;
pub use offsets::{OffsetSource, RuntimeOffsets};
pub(crate) use offsets::NEWEST_MINOR;

use elf::ElfImage;
use moduledata::ModuleData;
use pclntab::Pclntab;

/// Why a file cannot be inspected.
#[derive(Debug, thiserror::Error)]
pub enum GoBinError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not an ELF file")]
    NotElf,
    #[error("malformed ELF file: {0}")]
    BadElf(String),
    #[error("unsupported binary: {0}")]
    Unsupported(String),
    #[error("not a Go binary (no .go.buildinfo / .gopclntab)")]
    NotGo,
    #[error(
        "Go binary without readable build info (.go.buildinfo), and {0}: cannot tell which Go version built it"
    )]
    NoBuildInfo(String),
    #[error(
        "Go binary without build info (.go.buildinfo): runtime.buildVersion says {version}, but {why}; \
         refusing to audit with a runtime layout that may be wrong"
    )]
    VersionDisagrees { version: String, why: String },
    #[error("cannot understand the Go version {0:?} recorded in .go.buildinfo")]
    BadVersion(String),
    #[error(
        "Go {found} is older than the oldest supported go1.{oldest}; supported: go1.{oldest} … go1.{newest}",
        oldest = offsets::OLDEST_MINOR,
        newest = offsets::NEWEST_MINOR
    )]
    TooOld { found: String },
    #[error("Go function table (.gopclntab) is missing or damaged: {0}")]
    BadPclntab(String),
    #[error("no runtime offsets for Go {0}")]
    NoOffsets(String),
}

/// A map-write routine linked into the binary, and where to probe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routine {
    /// `probe_common::uprobe::routine` id.
    pub id: u8,
    pub symbol: &'static str,
    /// Function entry (link-time virtual address).
    pub entry: u64,
    pub attach_vaddr: u64,
    /// File offset of `attach_vaddr`: what a uprobe attaches to.
    pub attach_offset: u64,
    /// `true` when the probe counts after the stack-bound check (the
    /// `prologue` modules say why): at the instruction after it (amd64) or
    /// at its branch (arm64, `at_stack_check`); `false` means the entry,
    /// which costs more per hit and fires twice when the stack grows.
    pub after_prologue: bool,
    /// `attach_vaddr` is the stack check's conditional branch (arm64), see
    /// `probe_common::uprobe::Cookie::at_stack_check`.
    pub at_stack_check: bool,
    /// The instruction at `attach_vaddr` (`push rbp`, `b.ls 0x…`).
    pub attach_instruction: String,
}

/// A call from one probed routine (the wrapper) into another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NestedCall {
    pub wrapper: u8,
    pub inner: u8,
    /// The call's return address (link-time).
    pub ret: u64,
    /// How far rsp drops from the wrapper's probe point to the inner one's
    /// (`probe_common::uprobe::Cookie::nest`); None if not decodable.
    pub sp_drop: Option<u8>,
}

impl Routine {
    /// Whether the attach point is as good as it gets: after the stack
    /// check, or at the entry of a `//go:nosplit` function (no stack check,
    /// e.g. `runtime.fatal`) that starts with `push rbp`. Either way the
    /// probed instruction is emulated, `[rsp]` is the return address and the
    /// probe fires once per call. Worth a warning when `false`.
    pub fn attach_is_ideal(&self) -> bool {
        self.after_prologue
            || (self.attach_vaddr == self.entry
                && (self.attach_instruction == "push rbp" || prologue_arm64::is_frame_push(&self.attach_instruction)))
    }
}

/// A symbolized code address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Innermost function, inlined or not (`main.strWriter`).
    pub function: String,
    /// Source file as recorded by the compiler (full path unless -trimpath).
    pub file: String,
    pub line: u32,
}

/// A function of the binary's function table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub entry: u64,
    /// One past the last byte.
    pub end: u64,
}

/// An inspected Go executable. Owns the file bytes; all addresses are
/// link-time virtual addresses (remove the PIE load bias first).
pub struct GoBinary {
    data: Vec<u8>,
    img: ElfImage,
    version_string: String,
    version: (u32, u32, u32),
    version_source: VersionSource,
    pcln: Pclntab,
    moduledata: Option<ModuleData>,
    has_dwarf: bool,
    type_cache: Mutex<HashMap<u64, Option<String>>>,
    /// `nested_returns` over every routine, computed once.
    nested: std::sync::OnceLock<Vec<NestedCall>>,
    /// The offsets DWARF gives, read once (decompressing and walking the
    /// DWARF takes ~30 ms, while the process stands stopped at exec).
    dwarf_offsets: std::sync::OnceLock<Option<RuntimeOffsets>>,
}

impl std::fmt::Debug for GoBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoBinary")
            .field("version", &self.version_string)
            .field("version_source", &self.version_source)
            .field("pie", &self.img.is_pie)
            .field("dwarf", &self.has_dwarf)
            .field("symtab", &self.img.has_symtab)
            .field("functions", &self.pcln.nfunc)
            .field("moduledata", &self.moduledata.map(|m| m.addr))
            .finish()
    }
}

impl GoBinary {
    pub fn open(path: &Path) -> Result<Self, GoBinError> {
        let data = std::fs::read(path).map_err(|source| GoBinError::Io {
            path: path.to_owned(),
            source,
        })?;
        let bin = Self::parse(data)?;
        Ok(bin)
    }

    pub fn parse(data: Vec<u8>) -> Result<Self, GoBinError> {
        let img = ElfImage::parse(&data)?;
        let version_string = buildinfo::find_version(&img, &data);
        let pcln = Pclntab::locate(&img, &data);
        let (version_string, version_source, pcln) = match (version_string, pcln) {
            (None, None) => return Err(GoBinError::NotGo),
            (None, Some(Err(e))) => {
                return Err(GoBinError::NoBuildInfo(format!(
                    "its function table (.gopclntab) is damaged ({e})"
                )));
            }
            (None, Some(Ok(pcln))) => {
                let (v, pcln) = Self::infer_version(&img, &data, pcln)?;
                (v, VersionSource::Inferred, Some(Ok(pcln)))
            }
            (Some(v), pcln) => (v, VersionSource::BuildInfo, pcln),
        };
        // The version first: for an old Go, "too old" is the useful error,
        // not that its (older-format) function table is not understood.
        let version = buildinfo::parse_version(&version_string)
            .filter(|v| v.0 == 1)
            .ok_or_else(|| GoBinError::BadVersion(version_string.clone()))?;
        if version.1 < offsets::OLDEST_MINOR {
            return Err(GoBinError::TooOld {
                found: version_string,
            });
        }
        let mut pcln = pcln
            .unwrap_or_else(|| Err("not found".into()))
            .map_err(GoBinError::BadPclntab)?;
        let moduledata = moduledata::locate(&img, &data, &pcln, version.1);
        pcln.text = match moduledata {
            Some(md) => md.text,
            None => Self::text_without_moduledata(&img, &data, &pcln)?,
        };
        if pcln.nfunc == 0 {
            return Err(GoBinError::BadPclntab("no functions".into()));
        }
        let has_dwarf = img.has_section(".debug_info") || img.has_section(".zdebug_info");
        let bin = Self {
            data,
            img,
            version_string,
            version,
            version_source,
            pcln,
            moduledata,
            has_dwarf,
            type_cache: Mutex::new(HashMap::new()),
            nested: std::sync::OnceLock::new(),
            dwarf_offsets: std::sync::OnceLock::new(),
        };
        if version_source == VersionSource::Inferred {
            bin.check_offsets_agree()?;
        }
        Ok(bin)
    }

    /// The text base when moduledata is not found: `pcHeader.textStart`
    /// (Go ≤ 1.25), else the `runtime.text` symbol, else `.text` (wrong for
    /// cgo builds, where C code precedes `runtime.text`: the last resort).
    fn text_without_moduledata(img: &ElfImage, data: &[u8], pcln: &Pclntab) -> Result<u64, GoBinError> {
        let header = img
            .ptr(data, pcln.vaddr.saturating_add(24))
            .filter(|&t| t != 0)
            .or((pcln.header_text_start != 0).then_some(pcln.header_text_start));
        header
            .or_else(|| img.symbols.get("runtime.text").copied())
            .or_else(|| img.section(".text").map(|s| s.addr))
            .ok_or_else(|| GoBinError::BadPclntab("cannot find the text base (runtime.text)".into()))
    }

    /// No build info: the version `runtime.buildVersion` names, checked
    /// against the binary's structure (`infer` says how).
    fn infer_version(img: &ElfImage, data: &[u8], mut pcln: Pclntab) -> Result<(String, Pclntab), GoBinError> {
        // Entry offsets need the text base before the version is known; the
        // moduledata fields up to `text` are the same in every layout, so
        // either layout that validates gives it.
        let md = [offsets::NEWEST_MINOR, offsets::NEWEST_MINOR - 1]
            .into_iter()
            .find_map(|m| moduledata::locate(img, data, &pcln, m));
        pcln.text = match md {
            Some(md) => md.text,
            None => Self::text_without_moduledata(img, data, &pcln)?,
        };
        let schedinit = pcln.funcs(data).find(|f| {
            pcln.func_name_bytes(data, f) == Some(b"runtime.schedinit".as_slice())
        });
        let code = schedinit.and_then(|f| {
            let len = usize::try_from(f.end.checked_sub(f.entry)?).ok()?;
            let tail = img.tail(data, f.entry)?;
            Some((tail.get(..len.min(tail.len()))?, f.entry))
        });
        let named = infer::build_version(img, data, code).map_err(|e| match e {
            infer::InferError::NotFound => {
                GoBinError::NoBuildInfo("no runtime.buildVersion string was found".into())
            }
            infer::InferError::Ambiguous(all) => GoBinError::NoBuildInfo(format!(
                "it holds several Go version strings ({}) and no code confirms one",
                all.join(", ")
            )),
        })?;
        let minor = buildinfo::parse_version(&named.version)
            .filter(|v| v.0 == 1)
            .map(|v| v.1)
            .ok_or_else(|| GoBinError::BadVersion(named.version.clone()))?;
        let has_prefix = |prefix: &[u8]| {
            pcln.funcs(data)
                .any(|f| pcln.func_name_bytes(data, &f).is_some_and(|n| n.starts_with(prefix)))
        };
        let evidence = infer::evidence(img, data, &pcln, &has_prefix);
        if let Some(why) = infer::contradiction(minor, &evidence) {
            return Err(GoBinError::VersionDisagrees {
                version: named.version,
                why,
            });
        }
        Ok((named.version, pcln))
    }

    /// For an inferred version: the per-version offsets table must cover it
    /// and, when DWARF is present, say what DWARF says.
    fn check_offsets_agree(&self) -> Result<(), GoBinError> {
        let classic = self.function("runtime.hashGrow").is_some();
        let Some(table) = offsets::from_table(self.version.1, Some(classic)) else {
            return Err(GoBinError::NoOffsets(self.version_string.clone()));
        };
        let dwarf = self
            .has_dwarf
            .then(|| offsets::from_dwarf(&self.data, self.version.1))
            .flatten();
        if let Some(d) = dwarf
            && (d.goid, d.gopc) != (table.goid, table.gopc)
        {
            return Err(GoBinError::VersionDisagrees {
                version: self.version_string.clone(),
                why: format!(
                    "its DWARF places g.goid/g.gopc at {}/{}, where go1.{} has them at {}/{}",
                    d.goid, d.gopc, self.version.1, table.goid, table.gopc
                ),
            });
        }
        Ok(())
    }

    /// The toolchain version as recorded, e.g. `go1.27.3`.
    pub fn go_version(&self) -> &str {
        &self.version_string
    }

    /// `(1, 27, 3)`.
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// Whether the version was recorded (`.go.buildinfo`) or inferred.
    pub fn version_source(&self) -> VersionSource {
        self.version_source
    }

    /// Position-independent (ELF `ET_DYN`): runtime addresses carry a load bias.
    pub fn is_pie(&self) -> bool {
        self.img.is_pie
    }

    /// Whether the binary is arm64 code, where every probed instruction but
    /// a branch is single-stepped out of line by the kernel (see
    /// `prologue_arm64`).
    pub fn is_arm64(&self) -> bool {
        self.img.machine == object::elf::EM_AARCH64
    }

    pub fn has_dwarf(&self) -> bool {
        self.has_dwarf
    }

    pub fn has_symtab(&self) -> bool {
        self.img.has_symtab
    }

    /// Whether moduledata was found (needed for type names and inlined
    /// function names; without it both degrade).
    pub fn has_moduledata(&self) -> bool {
        self.moduledata.is_some()
    }

    /// All functions of the function table, in address order.
    pub fn functions(&self) -> Vec<Function> {
        self.pcln
            .funcs(&self.data)
            .filter_map(|f| {
                Some(Function {
                    name: self.pcln.func_name(&self.data, &f)?,
                    entry: f.entry,
                    end: f.end,
                })
            })
            .collect()
    }

    /// The first function named `name` (Go names are unique per binary).
    pub fn function(&self, name: &str) -> Option<Function> {
        self.pcln.funcs(&self.data).find_map(|f| {
            (self.pcln.func_name_bytes(&self.data, &f)? == name.as_bytes()).then(|| Function {
                name: name.to_string(),
                entry: f.entry,
                end: f.end,
            })
        })
    }

    /// The function containing `vaddr`.
    pub fn function_at(&self, vaddr: u64) -> Option<Function> {
        let f = self.pcln.find(&self.data, vaddr)?;
        Some(Function {
            name: self.pcln.func_name(&self.data, &f)?,
            entry: f.entry,
            end: f.end,
        })
    }

    /// Code bytes of `f` from the file, clipped to its segment.
    pub fn code(&self, f: &Function) -> Option<&[u8]> {
        self.code_between(f.entry, f.end)
    }

    fn code_between(&self, entry: u64, end: u64) -> Option<&[u8]> {
        let len = usize::try_from(end.checked_sub(entry)?).ok()?;
        let tail = self.img.tail(&self.data, entry)?;
        tail.get(..len.min(tail.len()))
    }

    /// The map-write routines the binary links, one per routine id, by id.
    pub fn routines(&self) -> Vec<Routine> {
        let mut found: Vec<Option<Routine>> = vec![None; routine::COUNT];
        for f in self.pcln.funcs(&self.data) {
            let Some(name) = self.pcln.func_name_bytes(&self.data, &f) else {
                continue;
            };
            let Some(id) = routine::SYMBOLS.iter().position(|s| s.as_bytes() == name) else {
                continue;
            };
            let Some(slot) = found.get_mut(id) else {
                continue;
            };
            if slot.is_some() {
                continue;
            }
            let attach = match (self.img.machine, self.code_between(f.entry, f.end)) {
                (object::elf::EM_X86_64, Some(code)) => prologue::attach_point(code, f.entry),
                (object::elf::EM_AARCH64, Some(code)) => prologue_arm64::attach_point(code, f.entry),
                _ => prologue::Attach {
                    vaddr: f.entry,
                    after_prologue: false,
                    at_stack_check: false,
                    instruction: String::new(),
                },
            };
            let Some(attach_offset) = self.img.vaddr_to_offset(attach.vaddr) else {
                continue;
            };
            *slot = Some(Routine {
                id: u8::try_from(id).unwrap_or(u8::MAX),
                symbol: routine::SYMBOLS.get(id).copied().unwrap_or_default(),
                entry: f.entry,
                attach_vaddr: attach.vaddr,
                attach_offset,
                after_prologue: attach.after_prologue,
                at_stack_check: attach.at_stack_check,
                attach_instruction: attach.instruction,
            });
        }
        found.into_iter().flatten().collect()
    }

    /// Calls from one probed routine into another, e.g. Go 1.27's
    /// `mapaccess1_*`, thin wrappers around `mapaccess2_*`: the inner entry
    /// is the same map operation as the wrapper's, already counted at the
    /// user's call site. Computed once.
    pub fn nested_calls(&self) -> &[NestedCall] {
        self.nested.get_or_init(|| self.find_nested_calls(&self.routines()))
    }

    /// Return addresses (link-time) of the nested calls.
    pub fn nested_returns(&self) -> Vec<u64> {
        self.nested_calls().iter().map(|n| n.ret).collect()
    }

    fn find_nested_calls(&self, routines: &[Routine]) -> Vec<NestedCall> {
        let mut out = Vec::new();
        type Calls = fn(&[u8], u64) -> Vec<(u64, u64)>;
        type Drop = fn(&[u8], u64, u64, u64) -> Option<u64>;
        let (direct_calls, sp_drop_to_call): (Calls, Drop) = match self.img.machine {
            object::elf::EM_X86_64 => (prologue::direct_calls, prologue::sp_drop_to_call),
            object::elf::EM_AARCH64 => (prologue_arm64::direct_calls, prologue_arm64::sp_drop_to_call),
            _ => return out,
        };
        // Map operations only: every routine calls `runtime.fatal`.
        let map_op = |r: &&Routine| routine::op(r.id) != routine::Op::None;
        for w in routines.iter().filter(map_op) {
            let Some(f) = self.function_at(w.entry) else { continue };
            let Some(code) = self.code(&f) else { continue };
            for (target, ret) in direct_calls(code, f.entry) {
                let Some(inner) = routines.iter().filter(map_op).find(|r| r.entry == target) else { continue };
                let sp_drop = sp_drop_to_call(code, f.entry, w.attach_vaddr, ret)
                    .and_then(|d| u8::try_from(d).ok())
                    .filter(|&d| d != 0 && d != probe_common::uprobe::NEST_WRAPPER);
                out.push(NestedCall { wrapper: w.id, inner: inner.id, ret, sp_drop });
            }
        }
        out
    }

    /// Offsets for the probe, from DWARF when present, else from the
    /// per-version table; `source` says which.
    pub fn runtime_offsets(&self) -> Result<RuntimeOffsets, GoBinError> {
        let from_dwarf =
            self.dwarf_offsets.get_or_init(|| self.has_dwarf.then(|| offsets::from_dwarf(&self.data, self.version.1)).flatten());
        if let Some(o) = from_dwarf {
            return Ok(*o);
        }
        // The classic map's grow path is linked only with classic maps.
        let classic_maps = self.function("runtime.hashGrow").is_some();
        offsets::from_table(self.version.1, Some(classic_maps))
            .ok_or_else(|| GoBinError::NoOffsets(self.version_string.clone()))
    }

    /// Symbolizes a return address or `gopc` (link-time address). Like the Go
    /// runtime, looks up `pc-1` so a call at the end of an inlined body or
    /// before a line change is attributed to the call's line.
    pub fn symbolize(&self, pc: u64) -> Option<Location> {
        let look = pc.checked_sub(1)?;
        let d = &self.data;
        let f = self.pcln.find(d, look)?;
        let line = u32::try_from(self.pcln.line(d, &f, look)?).ok()?;
        let file = self.pcln.file(d, &f, look)?;
        // pcln/pcfile already give the innermost position; only the name
        // needs the inline tree.
        let function = self
            .inlined_name(&f, look)
            .or_else(|| self.pcln.func_name(d, &f))?;
        Some(Location {
            function,
            file,
            line,
        })
    }

    fn inlined_name(&self, f: &pclntab::Func, pc: u64) -> Option<String> {
        let md = self.moduledata.as_ref()?;
        let ix =
            u64::try_from(
                self.pcln
                    .pcdata(&self.data, f, pclntab::PCDATA_INL_TREE_INDEX, pc)?,
            )
            .ok()?;
        let tree = md.gofunc.checked_add(u64::from(self.pcln.funcdata(
            &self.data,
            f,
            pclntab::FUNCDATA_INL_TREE,
        )?))?;
        // inlinedCall{funcID u8; _ [3]byte; nameOff int32; parentPc int32; startLine int32}
        let call = tree.checked_add(ix.checked_mul(16)?)?;
        let name_off = self.img.u32(&self.data, call.checked_add(4)?)? as i32;
        self.pcln.name_at(&self.data, name_off)
    }

    /// Name of the Go type whose `abi.Type` is at `type_addr` (link-time
    /// address), e.g. the `*maptype` argument of `mapassign`.
    pub fn type_name(&self, type_addr: u64) -> Option<String> {
        let cached = self
            .type_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&type_addr).cloned());
        if let Some(hit) = cached {
            return hit;
        }
        let name = types::type_name(&self.img, &self.data, self.moduledata.as_ref()?, type_addr);
        if let Ok(mut cache) = self.type_cache.lock() {
            cache.insert(type_addr, name.clone());
        }
        name
    }

    /// Virtual address → file offset (uprobes attach by file offset).
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        self.img.vaddr_to_offset(vaddr)
    }

    /// The PT_LOAD segments, e.g. to compute the PIE load bias from
    /// `/proc/PID/maps` (bias = mapped start − (vaddr − offset) of the
    /// mapping with the same file offset).
    pub fn load_segments(&self) -> Vec<Segment> {
        self.img.segments.clone()
    }
}
