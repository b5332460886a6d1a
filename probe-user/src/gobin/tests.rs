//! Tests against real Go binaries built by every toolchain of the matrix
//! (`crate::fixtures`), checked against `go tool objdump` and the fixture's
//! source. A missing toolchain fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use super::*;
use crate::fixtures::{self, GO_NEWEST, GO_OLDEST, GO_VERSIONS, Variant};

/// Routines `fixtures/go/writers` makes every toolchain link.
const FIXTURE_ROUTINES: &[u8] = &[
    routine::MAPASSIGN_FASTSTR,
    routine::MAPASSIGN_FAST64,
    routine::MAPASSIGN_FAST32,
    routine::MAPASSIGN,
    routine::MAPDELETE_FASTSTR,
    routine::MAPDELETE_FAST64,
    routine::MAPDELETE,
    routine::MAPCLEAR,
];

fn matrix() -> Vec<(&'static str, Variant)> {
    let mut m = Vec::new();
    for v in GO_VERSIONS {
        m.push((*v, Variant::Plain));
        m.push((*v, Variant::Stripped));
    }
    for v in [GO_OLDEST, GO_NEWEST] {
        m.push((v, Variant::Pie));
        m.push((v, Variant::PieStripped));
        m.extend(WILD.iter().map(|&w| (v, w)));
    }
    m
}

/// Builds users run that the toolchain's defaults do not make (issue #14).
const WILD: &[Variant] = &[
    Variant::StrippedNoBuildInfo,
    Variant::Cgo,
    Variant::External,
    Variant::ExternalPie,
    Variant::Trimpath,
];

/// Builds (once; tests run in parallel and must not race one `go build -o`)
/// and parses a fixture.
fn fixture(version: &str, variant: Variant) -> (PathBuf, Arc<GoBinary>) {
    type Cache = Mutex<HashMap<(String, &'static str), (PathBuf, Arc<GoBinary>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (version.to_string(), variant.name());
    if let Some(hit) = cache.get(&key) {
        return hit.clone();
    }
    let path = fixtures::build("writers", version, variant).unwrap_or_else(|e| {
        panic!(
            "building the writers fixture with Go {version} ({}): {e:#}",
            variant.name()
        )
    });
    let bin = GoBinary::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hit = (path, Arc::new(bin));
    cache.insert(key, hit.clone());
    hit
}

/// The same build with symbols, for `go tool objdump` (which needs them).
fn unstripped(variant: Variant) -> Variant {
    match variant {
        Variant::Stripped | Variant::StrippedNoBuildInfo => Variant::Plain,
        Variant::PieStripped => Variant::Pie,
        v => v,
    }
}

/// One disassembled instruction of `go tool objdump`, by offset from its
/// function's entry.
#[derive(Clone, Debug)]
struct DumpInsn {
    off: u64,
    file: String,
    line: u32,
    asm: String,
}

/// `go tool objdump` of the map routines and `main.strWriter`, keyed by
/// function name. Cached per (version, variant).
fn objdump(version: &str, variant: Variant) -> Arc<HashMap<String, Vec<DumpInsn>>> {
    type Cache = Mutex<HashMap<(String, &'static str), Arc<HashMap<String, Vec<DumpInsn>>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let variant = unstripped(variant);
    let (path, _) = fixture(version, variant);
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (version.to_string(), variant.name());
    if let Some(hit) = cache.get(&key) {
        return hit.clone();
    }
    let go = fixtures::go_binary(version).unwrap();
    let out = Command::new(go)
        .args([
            "tool",
            "objdump",
            "-s",
            r"^(runtime\.map(assign|delete|clear|access|iterinit|IterStart).*|runtime\.gcStart|main\.strWriter)$",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "objdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut funcs: HashMap<String, Vec<DumpInsn>> = HashMap::new();
    let mut current: Option<(String, u64)> = None;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(rest) = l.strip_prefix("TEXT ") {
            let name = rest.split("(SB)").next().unwrap().to_string();
            current = Some((name, u64::MAX));
            continue;
        }
        // "  file.go:123\t0xADDR\tHEX\tASM"
        let cols: Vec<&str> = l
            .split('\t')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let (Some((name, entry)), [pos, addr, _hex, asm, ..]) = (current.as_mut(), cols.as_slice())
        else {
            continue;
        };
        let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16).unwrap();
        if *entry == u64::MAX {
            *entry = addr;
        }
        let (file, line) = pos.rsplit_once(':').unwrap();
        funcs.entry(name.clone()).or_default().push(DumpInsn {
            off: addr - *entry,
            file: file.to_string(),
            line: line.parse().unwrap(),
            asm: asm.to_string(),
        });
    }
    let hit = Arc::new(funcs);
    cache.insert(key, hit.clone());
    hit
}

fn decode_all(code: &[u8], ip: u64) -> Vec<Instruction> {
    Decoder::with_ip(64, code, ip, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

fn func_insns(bin: &GoBinary, name: &str) -> (Function, Vec<Instruction>) {
    let f = bin
        .function(name)
        .unwrap_or_else(|| panic!("{name} not in the function table"));
    let code = bin.code(&f).unwrap();
    let insns = decode_all(code, f.entry);
    (f, insns)
}

/// Return address of the first call in `caller` to `callee`.
fn call_site(bin: &GoBinary, caller: &str, callee: &str) -> (u64, Vec<Instruction>, usize) {
    let target = bin
        .function(callee)
        .unwrap_or_else(|| panic!("{callee} not linked"))
        .entry;
    let (_, insns) = func_insns(bin, caller);
    let i = insns
        .iter()
        .position(|i| {
            i.mnemonic() == Mnemonic::Call
                && i.op0_kind() == OpKind::NearBranch64
                && i.near_branch_target() == target
        })
        .unwrap_or_else(|| panic!("no call to {callee} in {caller}"));
    (insns[i].next_ip(), insns, i)
}

/// The `*maptype` loaded into RAX before the call to `callee` in `caller`.
fn maptype_arg(bin: &GoBinary, caller: &str, callee: &str) -> u64 {
    let (_, insns, at) = call_site(bin, caller, callee);
    insns[..at]
        .iter()
        .rev()
        .find(|i| {
            i.mnemonic() == Mnemonic::Lea
                && i.op0_register() == Register::RAX
                && i.is_ip_rel_memory_operand()
        })
        .map(|i| i.ip_rel_memory_address())
        .unwrap_or_else(|| panic!("no lea rax,[rip+X] before the call to {callee} in {caller}"))
}

struct Source {
    path: PathBuf,
    lines: Vec<String>,
}

fn main_go() -> Source {
    let path = fixtures::workspace_root().join("fixtures/go/writers/main.go");
    let text = std::fs::read_to_string(&path).unwrap();
    Source {
        path,
        lines: text.lines().map(str::to_string).collect(),
    }
}

impl Source {
    /// 1-based line of the first line containing `needle` at or after `from`.
    fn find(&self, needle: &str, from: u32) -> u32 {
        let start = from.saturating_sub(1) as usize;
        self.lines[start..]
            .iter()
            .position(|l| l.contains(needle))
            .map(|i| (start + i + 1) as u32)
            .unwrap_or_else(|| panic!("{needle:?} not in {}", self.path.display()))
    }

    /// First and last line of `func name(`.
    fn func_span(&self, name: &str) -> (u32, u32) {
        let start = self.find(&format!("func {name}("), 1);
        let end = start
            + self.lines[start as usize..]
                .iter()
                .position(|l| l == "}")
                .unwrap() as u32
            + 1;
        (start, end)
    }
}

fn label(version: &str, variant: Variant) -> String {
    format!("go{version} {}", variant.name())
}

#[test]
fn version_and_container() {
    for (ver, variant) in matrix() {
        let (_, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        assert_eq!(bin.go_version(), format!("go{ver}"), "{what}");
        let want: Vec<u32> = ver.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(bin.version(), (want[0], want[1], want[2]), "{what}");
        let pie = variant.is_pie();
        let stripped = variant.is_stripped();
        let source = if variant == Variant::StrippedNoBuildInfo {
            VersionSource::Inferred
        } else {
            VersionSource::BuildInfo
        };
        assert_eq!(bin.version_source(), source, "{what}");
        assert_eq!(bin.is_pie(), pie, "{what}");
        assert_eq!(bin.has_dwarf(), !stripped, "{what}");
        assert_eq!(bin.has_symtab(), !stripped, "{what}");
        assert!(bin.has_moduledata(), "{what}: moduledata not found");
        let segs = bin.load_segments();
        assert!(segs.iter().any(|s| s.executable), "{what}");
        let text = segs.iter().find(|s| s.executable).unwrap();
        assert_eq!(bin.vaddr_to_offset(text.vaddr), Some(text.offset), "{what}");
        // gcc's PIE maps its first (read-only) segment at address 0.
        let zero = segs.iter().any(|s| s.vaddr == 0).then_some(0);
        assert_eq!(bin.vaddr_to_offset(0), zero, "{what}");
        assert_eq!(zero.is_some(), variant == Variant::ExternalPie, "{what}");
    }
}

#[test]
fn routines_attach_after_the_stack_check() {
    for (ver, variant) in matrix() {
        let (_, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        let dump = objdump(ver, variant);
        let routines = bin.routines();
        let mut ids: Vec<u8> = routines.iter().map(|r| r.id).collect();
        ids.dedup();
        assert_eq!(
            ids.len(),
            routines.len(),
            "{what}: one entry per routine id"
        );
        for &id in FIXTURE_ROUTINES {
            let sym = routine::SYMBOLS[id as usize];
            let r = routines
                .iter()
                .find(|r| r.id == id)
                .unwrap_or_else(|| panic!("{what}: {sym} not found; have {routines:?}"));
            assert_eq!(r.symbol, sym);
            assert!(r.attach_is_ideal(), "{what}: {sym}");
            assert!(
                r.after_prologue,
                "{what}: {sym}: prologue not recognized: {r:?}"
            );
            assert_eq!(r.attach_instruction, "push rbp", "{what}: {sym}");
            assert_eq!(
                bin.vaddr_to_offset(r.attach_vaddr),
                Some(r.attach_offset),
                "{what}: {sym}"
            );

            // What the toolchain's own disassembler says: the instruction
            // after the first JBE is PUSHQ BP, at the same offset.
            let insns = dump
                .get(sym)
                .unwrap_or_else(|| panic!("{what}: objdump has no {sym}"));
            let jbe = insns.iter().position(|i| i.asm.starts_with("JBE")).unwrap();
            assert!(jbe <= 2, "{what}: {sym}: JBE is instruction {jbe}");
            let after = &insns[jbe + 1];
            assert_eq!(after.asm, "PUSHQ BP", "{what}: {sym}");
            assert_eq!(r.attach_vaddr - r.entry, after.off, "{what}: {sym}");

            // Only the stack check precedes the attach point, so nothing
            // moved RSP and [rsp] is still the return address there.
            let f = bin.function(sym).unwrap();
            let before = decode_all(
                &bin.code(&f).unwrap()[..(r.attach_vaddr - r.entry) as usize],
                r.entry,
            );
            for i in &before {
                let ok = match i.mnemonic() {
                    Mnemonic::Cmp | Mnemonic::Jbe => true,
                    Mnemonic::Lea => i.op0_register() == Register::R12,
                    _ => false,
                };
                assert!(
                    ok,
                    "{what}: {sym}: {} before the attach point",
                    prologue::format(i)
                );
            }
        }
        // runtime.fatal is nosplit: no stack check, `push rbp` at entry.
        let fatal = routines.iter().find(|r| r.id == routine::FATAL).unwrap();
        assert_eq!(fatal.symbol, "runtime.fatal");
        assert!(!fatal.after_prologue, "{what}: {fatal:?}");
        assert_eq!(
            (fatal.attach_vaddr, fatal.attach_instruction.as_str()),
            (fatal.entry, "push rbp"),
            "{what}"
        );
        assert!(fatal.attach_is_ideal(), "{what}");
    }
}

/// Every probed routine the binary links — the write, delete and clear
/// routines, every `mapaccess*` read routine, the iteration start
/// (`mapiterinit`, `mapIterStart`), `runtime.gcStart` — is
/// attached exactly at the instruction after its prologue's stack check as
/// the toolchain's own disassembler shows it: the conditional jump whose
/// target calls `runtime.morestack*`. A routine without that check is
/// attached at its entry.
#[test]
fn every_attach_point_matches_the_toolchains_objdump() {
    let mut reads = 0;
    for (ver, variant) in matrix() {
        let (_, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        let dump = objdump(ver, variant);
        for r in bin.routines().iter().filter(|r| r.id != routine::FATAL) {
            let sym = r.symbol;
            let insns = dump.get(sym).unwrap_or_else(|| panic!("{what}: objdump has no {sym}"));
            let entry = r.entry;
            let at = |asm: &str| {
                let target = asm.split_whitespace().nth(1)?.strip_prefix("0x")?;
                u64::from_str_radix(target, 16).ok()?.checked_sub(entry)
            };
            // The stack check: a conditional jump (not JMP) among the first
            // instructions to a block that calls morestack.
            let check = insns.iter().take(4).position(|i| {
                i.asm.starts_with('J')
                    && !i.asm.starts_with("JMP")
                    && at(&i.asm).is_some_and(|t| {
                        insns
                            .iter()
                            .skip_while(|j| j.off < t)
                            .take_while(|j| !j.asm.starts_with("JMP"))
                            .any(|j| j.asm.starts_with("CALL runtime.morestack"))
                    })
            });
            let want = check.map_or(0, |c| insns[c + 1].off);
            assert_eq!(r.attach_vaddr - entry, want, "{what}: {sym}: {:?}", &insns[..insns.len().min(4)]);
            assert_eq!(r.after_prologue, check.is_some(), "{what}: {sym}");
            reads += usize::from(routine::op(r.id) == routine::Op::Read);
        }
    }
    // The writers fixture links the eight `mapaccess{1,2}{,_fast32,_fast64,_faststr}`.
    assert!(reads >= 8 * matrix().len(), "{reads} read routines compared");
}

#[test]
fn runtime_offsets_from_dwarf_match_the_table() {
    for (ver, variant) in matrix() {
        let (_, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        let got = bin.runtime_offsets().unwrap();
        let table = offsets::from_table(bin.version().1, None).unwrap();
        let stripped = variant.is_stripped();
        let want_source = if stripped {
            OffsetSource::VersionTable
        } else {
            OffsetSource::Dwarf
        };
        assert_eq!(got.source, want_source, "{what}");
        assert_eq!(
            (got.goid, got.gopc, got.writing_off, got.writing_mask),
            (
                table.goid,
                table.gopc,
                table.writing_off,
                table.writing_mask
            ),
            "{what}: DWARF and the version table disagree"
        );
        if !stripped {
            assert_eq!(
                offsets::from_dwarf(&bin.data, bin.version().1),
                Some(got),
                "{what}"
            );
        }
    }
}

#[test]
fn symbolize_the_fixture() {
    let src = main_go();
    let (start, end) = src.func_span("strWriter");
    let assign_line = src.find("// mapassign_faststr", start);
    let delete_line = src.find("// mapdelete_faststr", start);
    assert!(assign_line < end && delete_line < end);
    for (ver, variant) in matrix() {
        let (_, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        let f = bin.function("main.strWriter").unwrap();
        assert_eq!(bin.function_at(f.entry + 3), Some(f.clone()), "{what}");

        // Any pc of the function: its own name, file, a line in its body.
        let loc = bin.symbolize(f.entry + 1).unwrap();
        assert_eq!(loc.function, "main.strWriter", "{what}");
        // -trimpath records the module path instead of the directory.
        let want_file = if variant == Variant::Trimpath {
            "mapaudit.dev/fixtures/writers/main.go"
        } else {
            "fixtures/go/writers/main.go"
        };
        assert!(loc.file.ends_with(want_file), "{what}: {}", loc.file);
        if variant == Variant::Trimpath {
            assert_eq!(loc.file, want_file, "{what}");
        }
        assert!(
            (start..=end).contains(&loc.line),
            "{what}: line {} outside {start}..={end}",
            loc.line
        );

        // The exact write and delete sites.
        let (ret, _, _) = call_site(&bin, "main.strWriter", "runtime.mapassign_faststr");
        let loc = bin.symbolize(ret).unwrap();
        assert_eq!(
            (loc.function.as_str(), loc.line),
            ("main.strWriter", assign_line),
            "{what}"
        );
        assert!(loc.file.ends_with("writers/main.go"), "{what}");
        let (ret, _, _) = call_site(&bin, "main.strWriter", "runtime.mapdelete_faststr");
        assert_eq!(bin.symbolize(ret).unwrap().line, delete_line, "{what}");

        // strconv.Itoa is inlined into strWriter: the call it makes reports
        // the inlined function and its own file:line, as objdump does.
        let dump = objdump(ver, variant);
        let (_, insns) = func_insns(&bin, "main.strWriter");
        let format_int = ["strconv.FormatInt", "internal/strconv.FormatInt"]
            .iter()
            .filter_map(|n| bin.function(n))
            .map(|f| f.entry)
            .collect::<Vec<_>>();
        let call = insns
            .iter()
            .find(|i| {
                i.mnemonic() == Mnemonic::Call && format_int.contains(&i.near_branch_target())
            })
            .unwrap_or_else(|| panic!("{what}: no inlined strconv call in main.strWriter"));
        let loc = bin.symbolize(call.next_ip()).unwrap();
        let expect = dump["main.strWriter"]
            .iter()
            .find(|d| d.off == call.ip() - f.entry)
            .unwrap();
        assert!(loc.function.ends_with("strconv.Itoa"), "{what}: {loc:?}");
        assert!(
            expect.file.ends_with(loc.file.rsplit('/').next().unwrap()),
            "{what}: {loc:?} vs {expect:?}"
        );
        assert_eq!(loc.line, expect.line, "{what}: {loc:?}");

        // Outside any function.
        assert_eq!(bin.symbolize(0), None);
        assert_eq!(bin.symbolize(1), None);
        assert_eq!(bin.symbolize(u64::MAX), None);
    }
}

#[test]
fn goroutine_creation_sites() {
    // gopc is the return address of the runtime.newproc call made by a `go`
    // statement; it symbolizes to that statement's line.
    let src = main_go();
    let (start, end) = src.func_span("main");
    let want: Vec<u32> = (start..=end)
        .filter(|&l| src.lines[l as usize - 1].contains("; go "))
        .collect();
    assert_eq!(want.len(), 6);
    for (ver, variant) in matrix() {
        let (_, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        let newproc = bin.function("runtime.newproc").unwrap().entry;
        let (_, insns) = func_insns(&bin, "main.main");
        let got: Vec<u32> = insns
            .iter()
            .filter(|i| i.mnemonic() == Mnemonic::Call && i.near_branch_target() == newproc)
            .map(|i| {
                let loc = bin.symbolize(i.next_ip()).unwrap();
                assert_eq!(loc.function, "main.main", "{what}");
                loc.line
            })
            .collect();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn moduledata_is_found_without_names() {
    for (ver, variant) in matrix() {
        let (_, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        let by_name = bin.moduledata.unwrap();
        let scanned = moduledata::scan(&bin.img, &bin.data, &bin.pcln, bin.version().1).unwrap();
        assert_eq!(scanned.addr, by_name.addr, "{what}");
        assert_eq!(scanned.text, bin.pcln.text, "{what}");
        // pcHeader.textStart (through its relocation in an externally
        // linked PIE) up to 1.25; zero since.
        let text_start = bin.img.ptr(&bin.data, bin.pcln.vaddr + 24).unwrap();
        let want = if bin.version().1 < 26 { scanned.text } else { 0 };
        assert_eq!(text_start, want, "{what}: pcHeader.textStart");
    }
}

#[test]
fn pointers_known_only_to_relocations() {
    // An externally linked PIE leaves relocated pointers zero in the file.
    // Simulate it by zeroing every R_X86_64_RELATIVE target of our PIEs.
    for ver in [GO_OLDEST, GO_NEWEST] {
        let (path, bin) = fixture(ver, Variant::PieStripped);
        let mut data = std::fs::read(&path).unwrap();
        let relocs = bin.img.relative_relocations().to_vec();
        assert!(relocs.len() > 100);
        for (at, _) in &relocs {
            let off = bin.vaddr_to_offset(*at).unwrap() as usize;
            data[off..off + 8].fill(0);
        }
        let zeroed = GoBinary::parse(data).unwrap();
        assert_eq!(
            zeroed.moduledata.map(|m| m.addr),
            bin.moduledata.map(|m| m.addr),
            "go{ver}"
        );
        let t = maptype_arg(&zeroed, "main.intWriter", "runtime.mapassign_fast64");
        assert_eq!(
            zeroed.type_name(t).as_deref(),
            Some("map[int64]int"),
            "go{ver}"
        );
        let (ret, _, _) = call_site(&zeroed, "main.strWriter", "runtime.mapassign_faststr");
        assert_eq!(zeroed.symbolize(ret), bin.symbolize(ret), "go{ver}");
        assert_eq!(zeroed.routines(), bin.routines(), "go{ver}");
    }
}

#[test]
fn section_headers_removed() {
    // sstrip-style: no section table at all; everything is found in the
    // segments by content.
    for ver in [GO_OLDEST, GO_NEWEST] {
        for variant in [Variant::Stripped, Variant::PieStripped] {
            let (path, bin) = fixture(ver, variant);
            let what = label(ver, variant);
            let mut data = std::fs::read(&path).unwrap();
            data[0x28..0x30].fill(0); // e_shoff
            data[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
            let bare = GoBinary::parse(data).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(bare.go_version(), bin.go_version(), "{what}");
            assert_eq!(bare.routines(), bin.routines(), "{what}");
            assert_eq!(
                bare.moduledata.map(|m| m.addr),
                bin.moduledata.map(|m| m.addr),
                "{what}"
            );
            let t = maptype_arg(&bare, "main.pairWriter", "runtime.mapassign");
            assert_eq!(
                bare.type_name(t).as_deref(),
                Some("map[[2]int]int"),
                "{what}"
            );
            let (ret, _, _) = call_site(&bare, "main.strWriter", "runtime.mapassign_faststr");
            assert_eq!(bare.symbolize(ret), bin.symbolize(ret), "{what}");
        }
    }
}

#[test]
fn type_names_of_map_arguments() {
    let cases = [
        (
            "main.strWriter",
            "runtime.mapassign_faststr",
            "map[string][]string",
        ),
        (
            "main.strWriter",
            "runtime.mapdelete_faststr",
            "map[string][]string",
        ),
        (
            "main.intWriter",
            "runtime.mapassign_fast64",
            "map[int64]int",
        ),
        ("main.pairWriter", "runtime.mapassign", "map[[2]int]int"),
        (
            "main.sharedWriter",
            "runtime.mapassign_faststr",
            "map[string]int",
        ),
        ("main.clearer", "runtime.mapassign_fast32", "map[int32]int"),
    ];
    for (ver, variant) in matrix() {
        let (_, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        for (caller, callee, want) in cases {
            let t = maptype_arg(&bin, caller, callee);
            assert_eq!(
                bin.type_name(t).as_deref(),
                Some(want),
                "{what}: {caller} → {callee} type at {t:#x}"
            );
            assert_eq!(bin.type_name(t).as_deref(), Some(want), "{what}: cached");
        }
        assert_eq!(bin.type_name(0), None);
        assert_eq!(bin.type_name(u64::MAX), None);
    }
}

#[test]
fn too_old_and_unknown_versions_are_refused_clearly() {
    let e = GoBinError::TooOld {
        found: "go1.20.14".into(),
    };
    assert_eq!(
        e.to_string(),
        "Go go1.20.14 is older than the oldest supported go1.21; supported: go1.21 … go1.27"
    );
    // Rewrite the inline version string of a real binary to go1.20.
    let (path, _) = fixture(GO_OLDEST, Variant::Stripped);
    let mut data = std::fs::read(&path).unwrap();
    let magic = data
        .windows(14)
        .position(|w| w == b"\xff Go buildinf:")
        .unwrap();
    let at = magic
        + data[magic..]
            .windows(9)
            .position(|w| w == b"go1.21.13")
            .unwrap();
    data[at..at + 9].copy_from_slice(b"go1.20.99");
    let err = GoBinary::parse(data.clone()).unwrap_err();
    assert!(matches!(err, GoBinError::TooOld { .. }), "{err}");
    data[at..at + 9].copy_from_slice(b"gccgo1.21");
    let err = GoBinary::parse(data).unwrap_err();
    assert!(matches!(err, GoBinError::BadVersion(_)), "{err}");
}

/// A small deterministic PRNG (xorshift64*): no dependency, reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Exercises every query; must not panic whatever `bin` holds.
fn poke(bin: &GoBinary, rng: &mut Rng) {
    let _ = bin.routines();
    let _ = bin.runtime_offsets();
    let funcs = bin.functions();
    for _ in 0..32 {
        let pc = match funcs.get(rng.below(funcs.len())) {
            Some(f) if rng.below(2) == 0 => f.entry.wrapping_add(rng.below(64) as u64),
            _ => rng.next(),
        };
        let _ = bin.symbolize(pc);
        let _ = bin.type_name(pc);
        let _ = bin.vaddr_to_offset(pc);
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(matches!(
        GoBinary::parse(Vec::new()),
        Err(GoBinError::NotElf)
    ));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for len in [1, 4, 16, 64, 100, 4096, 65536] {
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(GoBinary::parse(data.clone()).is_err());
        // Random bytes behind a valid ELF identification.
        if len >= 16 {
            data[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
            assert!(GoBinary::parse(data).is_err());
        }
    }
    let ls = GoBinary::parse(std::fs::read("/bin/ls").unwrap()).unwrap_err();
    assert!(matches!(ls, GoBinError::NotGo), "/bin/ls: {ls}");
    assert_eq!(
        ls.to_string(),
        "not a Go binary (no .go.buildinfo / .gopclntab)"
    );

    for variant in [Variant::Plain, Variant::PieStripped] {
        let (path, _) = fixture(GO_NEWEST, variant);
        let data = std::fs::read(&path).unwrap();
        for cut in [
            1,
            63,
            64,
            1000,
            data.len() / 4,
            data.len() / 2,
            data.len() - 4096,
            data.len() - 1,
        ] {
            let r = GoBinary::parse(data[..cut].to_vec());
            assert!(
                r.is_err(),
                "{}: truncated to {cut} bytes parsed",
                variant.name()
            );
        }
    }
}

#[test]
fn damaged_binaries_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    // Stripped builds for volume (no DWARF to decompress each round), one
    // build with DWARF for the DWARF reader.
    // MAPAUDIT_DAMAGE_ROUNDS scales it up for a longer soak.
    let scale: usize = std::env::var("MAPAUDIT_DAMAGE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    for (variant, rounds) in [
        (Variant::Stripped, scale),
        (Variant::PieStripped, scale),
        (Variant::Plain, scale / 12 + 1),
    ] {
        let (path, bin) = fixture(GO_NEWEST, variant);
        let pristine = std::fs::read(&path).unwrap();
        // Aim the damage where the parsers read: the pclntab, moduledata,
        // the type region, build info, DWARF, and anywhere.
        let md = bin.moduledata.unwrap();
        let at = |vaddr: u64| bin.vaddr_to_offset(vaddr).unwrap() as usize;
        // (start, span): ELF and program headers, then 64 KiB windows.
        let window = 1 << 16;
        let mut targets = vec![(0, 0x400), (0, pristine.len())];
        for start in [at(bin.pcln.vaddr), at(md.addr), at(md.types)] {
            targets.push((start, window));
        }
        for name in [".go.buildinfo", ".debug_info"] {
            targets.extend(bin.img.section(name).map(|s| (s.offset as usize, window)));
        }
        let mut parsed = 0;
        for round in 0..rounds {
            let mut data = pristine.clone();
            let (base, span) = targets[round % targets.len()];
            for _ in 0..1 + rng.below(16) {
                let at = (base + rng.below(span)).min(data.len() - 1);
                data[at] = rng.next() as u8;
            }
            if let Ok(b) = GoBinary::parse(data) {
                parsed += 1;
                poke(&b, &mut rng);
            }
        }
        assert!(parsed > 0, "some damage should still parse");
    }
}

/// Go 1.27's `mapaccess1*` are wrappers around `mapaccess2*`; older
/// versions have none. Checked against the toolchain's disassembly.
#[test]
fn nested_calls_between_read_routines_are_found_with_their_stack_distance() {
    for ver in [GO_OLDEST, "1.24.11", GO_NEWEST] {
        let path = fixtures::build("readers", ver, Variant::Plain).unwrap();
        let bin = GoBinary::open(&path).unwrap();
        let nested = bin.nested_calls();
        if ver != GO_NEWEST {
            assert_eq!(nested, &[], "go{ver}");
            continue;
        }
        let mut pairs: Vec<(u8, u8)> = nested.iter().map(|n| (n.wrapper, n.inner)).collect();
        pairs.sort();
        use routine::*;
        assert_eq!(
            pairs,
            vec![
                (MAPACCESS1, MAPACCESS2),
                (MAPACCESS1_FAST32, MAPACCESS2_FAST32),
                (MAPACCESS1_FAST64, MAPACCESS2_FAST64),
                (MAPACCESS1_FASTSTR, MAPACCESS2_FASTSTR),
            ],
            "go{ver}"
        );
        let go = fixtures::go_binary(ver).unwrap();
        let dump = Command::new(go).args(["tool", "objdump", "-s", "^runtime.mapaccess1_faststr$"]).arg(&path).output().unwrap();
        let dump = String::from_utf8_lossy(&dump.stdout);
        let n = nested.iter().find(|n| n.wrapper == MAPACCESS1_FASTSTR).unwrap();
        // The instruction before the return address is the CALL, and the
        // frame is `SUBQ $N, SP` after `PUSHQ BP`: rsp drops 8 + N + 8.
        let call = dump.lines().find(|l| l.contains("CALL runtime.mapaccess2_faststr")).expect("the wrapper's call");
        let sub = dump.lines().find(|l| l.contains("SUBQ $0x")).expect("the wrapper's frame");
        let frame = u64::from_str_radix(sub.split("SUBQ $0x").nth(1).unwrap().split(',').next().unwrap(), 16).unwrap();
        assert_eq!(n.sp_drop, Some((8 + frame + 8) as u8), "go{ver}: {dump}");
        let call_addr = u64::from_str_radix(call.split_whitespace().nth(1).unwrap().trim_start_matches("0x"), 16).unwrap();
        let call_len = call.split_whitespace().nth(2).unwrap().len() as u64 / 2;
        assert_eq!(n.ret, call_addr + call_len, "go{ver}: {call}");
    }
}

/// Function entries and attach offsets computed independently of `gobin`:
/// symbol values from the ELF symbol table, file offsets from the section
/// headers. In cgo and externally linked builds `.text` starts with C code
/// before `runtime.text`, so a text base taken from `.text` would shift
/// every function.
#[test]
fn cgo_and_external_linking_addresses() {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    for ver in [GO_OLDEST, GO_NEWEST] {
        for variant in [Variant::Plain, Variant::Pie, Variant::Cgo, Variant::External, Variant::ExternalPie] {
            let (path, bin) = fixture(ver, variant);
            let what = label(ver, variant);
            let data = std::fs::read(&path).unwrap();
            let file = object::File::parse(&*data).unwrap();
            let text = file.section_by_name(".text").unwrap().address();
            let md = bin.moduledata.unwrap();
            if variant.needs_cgo() {
                assert!(text < md.text, "{what}: .text {text:#x} should start before runtime.text {:#x}", md.text);
                // Dynamically linked against libc.
                assert!(file.section_by_name(".interp").is_some(), "{what}: not dynamically linked");
            }
            let syms: HashMap<String, u64> = file.symbols().filter_map(|s| Some((s.name().ok()?.to_string(), s.address()))).collect();
            assert_eq!(syms.get("runtime.text"), Some(&md.text), "{what}");
            for name in ["main.strWriter", "runtime.schedinit", "runtime.mapassign_faststr", "runtime.mapdelete", "runtime.mapclear"] {
                let f = bin.function(name).unwrap_or_else(|| panic!("{what}: {name}"));
                assert_eq!(Some(&f.entry), syms.get(name), "{what}: {name} entry");
            }
            for r in bin.routines() {
                let sec = file
                    .sections()
                    .find(|s| (s.address()..s.address() + s.size()).contains(&r.attach_vaddr))
                    .unwrap();
                let (off, _) = sec.file_range().unwrap();
                assert_eq!(r.attach_offset, off + (r.attach_vaddr - sec.address()), "{what}: {}", r.symbol);
            }
        }
    }
}

/// `objcopy --remove-section .go.buildinfo` on a stripped build: the version
/// comes from `runtime.buildVersion`, and everything else is what the same
/// build with build info gives.
#[test]
fn version_inferred_without_build_info() {
    for ver in [GO_OLDEST, GO_NEWEST] {
        let (_, with) = fixture(ver, Variant::Stripped);
        let (path, without) = fixture(ver, Variant::StrippedNoBuildInfo);
        let what = label(ver, Variant::StrippedNoBuildInfo);
        let data = std::fs::read(&path).unwrap();
        assert!(!data.windows(14).any(|w| w == b"\xff Go buildinf:"), "{what}: build info left");
        assert_eq!(without.go_version(), format!("go{ver}"), "{what}");
        assert_eq!(without.version_source(), VersionSource::Inferred, "{what}");
        assert_eq!(with.version_source(), VersionSource::BuildInfo, "{what}");
        assert_eq!(without.routines(), with.routines(), "{what}");
        assert_eq!(without.runtime_offsets().unwrap(), with.runtime_offsets().unwrap(), "{what}");
        assert_eq!(without.moduledata.map(|m| m.addr), with.moduledata.map(|m| m.addr), "{what}");
        // Found through the code that reads it, not by picking a string.
        let sched = without.function("runtime.schedinit").unwrap();
        let named = infer::build_version(&without.img, &without.data, Some((without.code(&sched).unwrap(), sched.entry))).unwrap();
        assert!(named.by_code, "{what}");
        // Without that code (another architecture), the string headers of
        // the data segments: here exactly one names a version.
        let scanned = infer::build_version(&without.img, &without.data, None).unwrap();
        assert_eq!((scanned.version.as_str(), scanned.by_code), (without.go_version(), false), "{what}");
    }
}

fn replace_all(data: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    for i in 0..data.len() - from.len() {
        if &data[i..i + from.len()] == from {
            data[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
    }
    n
}

#[test]
fn inferred_versions_that_contradict_the_binary_are_refused() {
    // (build, its version, a same-length lie, what gives the lie away)
    let cases = [
        (GO_NEWEST, "go1.27.3", "go1.23.3", "Go 1.20–1.25 always write"),
        (GO_NEWEST, "go1.27.3", "go1.25.3", "Go 1.20–1.25 always write"),
        (GO_OLDEST, "go1.21.13", "go1.26.13", "Go ≥ 1.26 no longer writes"),
        (GO_OLDEST, "go1.21.13", "go1.19.13", "Go ≥ 1.20 format"),
        ("1.24.11", "go1.24.11", "go1.23.11", "swiss maps"),
    ];
    for (ver, from, to, why) in cases {
        let path = fixtures::build("writers", ver, Variant::StrippedNoBuildInfo).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        assert!(replace_all(&mut data, from.as_bytes(), to.as_bytes()) > 0, "go{ver}");
        let err = GoBinary::parse(data).unwrap_err();
        assert!(matches!(err, GoBinError::VersionDisagrees { .. }), "go{ver} as {to}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(to) && msg.contains(why), "go{ver} as {to}: {msg}");
        assert!(msg.starts_with("Go binary without build info (.go.buildinfo): runtime.buildVersion says"), "{msg}");
    }
    // A consistent lie about the patch level is not detectable, and harmless:
    // nothing mapaudit reads depends on it.
    let path = fixtures::build("writers", GO_NEWEST, Variant::StrippedNoBuildInfo).unwrap();
    let mut data = std::fs::read(&path).unwrap();
    replace_all(&mut data, b"go1.27.3", b"go1.27.9");
    assert_eq!(GoBinary::parse(data).unwrap().go_version(), "go1.27.9");
}

#[test]
fn no_build_info_and_no_version_string_is_refused_clearly() {
    let path = fixtures::build("writers", GO_NEWEST, Variant::StrippedNoBuildInfo).unwrap();
    let mut data = std::fs::read(&path).unwrap();
    assert!(replace_all(&mut data, b"go1.27.3", b"xx1.27.3") > 0);
    let err = GoBinary::parse(data).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Go binary without readable build info (.go.buildinfo), and no runtime.buildVersion string was found: \
         cannot tell which Go version built it"
    );
}

/// Every build of the matrix (PIE, cgo, external linker, -trimpath…) with
/// its build info wiped: the inferred version is the recorded one, and
/// nothing else changes.
#[test]
fn every_build_infers_its_recorded_version() {
    for (ver, variant) in matrix() {
        if variant == Variant::StrippedNoBuildInfo {
            continue;
        }
        let (path, bin) = fixture(ver, variant);
        let what = label(ver, variant);
        let mut data = std::fs::read(&path).unwrap();
        let s = bin.img.section(".go.buildinfo").unwrap();
        data[s.offset as usize..s.offset as usize + 32].fill(0);
        let bare = GoBinary::parse(data).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(bare.version_source(), VersionSource::Inferred, "{what}");
        assert_eq!(bare.go_version(), bin.go_version(), "{what}");
        assert_eq!(bare.routines(), bin.routines(), "{what}");
        assert_eq!(bare.runtime_offsets().unwrap(), bin.runtime_offsets().unwrap(), "{what}");
        let sched = bare.function("runtime.schedinit").unwrap();
        let named = infer::build_version(&bare.img, &bare.data, Some((bare.code(&sched).unwrap(), sched.entry))).unwrap();
        assert!(named.by_code, "{what}: found through schedinit");
    }
}

/// `go tool objdump -s PATTERN` of a binary, as text.
fn go_objdump(version: &str, pattern: &str, path: &std::path::Path) -> String {
    let go = fixtures::go_binary(version).unwrap();
    let out = Command::new(go).args(["tool", "objdump", "-s", pattern]).arg(path).output().unwrap();
    assert!(out.status.success(), "objdump: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// arm64 builds (GOARCH=arm64) of every Go version, plain, PIE and
/// stripped, writers and readers: every probed routine the binary links
/// (writes, reads, iteration starts, `gcStart`) is probed on its stack
/// check's `BLS` as the toolchain's own disassembler shows it (the kernel
/// simulates a branch; the frame push after it would be single-stepped out
/// of line, see `prologue_arm64`); `runtime.fatal` (nosplit) at its entry,
/// the frame push `MOVD.W R30, -N(RSP)`.
#[test]
fn arm64_routines_attach_on_the_stack_check_branch() {
    for ver in GO_VERSIONS {
        for (name, variant) in [
            ("writers", Variant::Plain),
            ("writers", Variant::Pie),
            ("writers", Variant::Stripped),
            ("readers", Variant::Plain),
        ] {
            let what = format!("arm64 {name} {}", label(ver, variant));
            let path = fixtures::build_for("arm64", name, ver, variant).unwrap();
            let bin = GoBinary::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
            let routines = bin.routines();
            let dump_of = fixtures::build_for("arm64", name, ver, unstripped(variant)).unwrap();
            let dump = go_objdump(ver, r"^runtime\.(map.*|fatal|gcStart)$", &dump_of);
            let expected: &[u8] = if name == "writers" { FIXTURE_ROUTINES } else { &[] };
            let reads = routines.iter().filter(|r| routine::op(r.id) == routine::Op::Read).count();
            assert!(name == "writers" || reads >= 4, "{what}: {reads} read routines");
            for &id in expected.iter().chain([&routine::FATAL, &routine::GC_START]) {
                assert!(routines.iter().any(|r| r.id == id), "{what}: no {}", routine::SYMBOLS[id as usize]);
            }
            for r in &routines {
                let (id, sym) = (r.id, r.symbol);
                assert!(r.attach_is_ideal(), "{what}: {r:?}");
                assert_eq!(r.after_prologue, id != routine::FATAL, "{what}: {r:?}");
                assert_eq!(r.at_stack_check, id != routine::FATAL, "{what}: {r:?}");
                assert_eq!(bin.vaddr_to_offset(r.attach_vaddr), Some(r.attach_offset), "{what}: {sym}");
                // "  file.go:N\t0xADDR\tHEX\tASM" lines of this function.
                let text = dump.split("TEXT ").find(|t| t.starts_with(&format!("{sym}(SB)"))).unwrap_or_else(|| panic!("{what}: objdump has no {sym}"));
                let insns: Vec<(u64, &str)> = text
                    .lines()
                    .filter_map(|l| {
                        let cols: Vec<&str> = l.split('\t').map(str::trim).filter(|c| !c.is_empty()).collect();
                        let addr = u64::from_str_radix(cols.get(1)?.trim_start_matches("0x"), 16).ok()?;
                        Some((addr, *cols.get(3)?))
                    })
                    .collect();
                let entry = insns[0].0;
                if id == routine::FATAL {
                    assert_eq!(r.attach_vaddr, r.entry, "{what}: {r:?}");
                    let frame = insns[0].1.strip_prefix("MOVD.W R30, -").and_then(|s| s.split('(').next()).unwrap_or_else(|| panic!("{what}: {sym}: {:?}", insns[0]));
                    assert_eq!(r.attach_instruction, format!("str x30, [sp, #-{frame}]!"), "{what}: {sym}");
                    continue;
                }
                // `BLS 210(PC)`: the branch, 210 instructions on; the frame push follows it.
                let bls = insns.iter().position(|(_, a)| a.starts_with("BLS ")).unwrap_or_else(|| panic!("{what}: {sym}: no BLS"));
                assert!(bls == 2 || bls == 3, "{what}: {sym}: BLS is instruction {bls}");
                let (addr, asm) = insns[bls];
                assert_eq!(r.attach_vaddr - r.entry, addr - entry, "{what}: {sym}");
                let words: u64 = asm.trim_start_matches("BLS ").trim_end_matches("(PC)").parse().unwrap();
                assert_eq!(r.attach_instruction, format!("b.ls .+{:#x}", words * 4), "{what}: {sym}");
                let push = insns[bls + 1].1;
                assert!(push.starts_with("MOVD.W R30, -") || push.starts_with("SUB $"), "{what}: {sym}: {push}");
            }
        }
    }
}

/// Go 1.27's `mapaccess1_*` call `mapaccess2_*` on arm64 too; the stack
/// drops by the wrapper's frame (`bl` pushes nothing).
#[test]
fn arm64_nested_calls_are_found_with_their_stack_distance() {
    for ver in [GO_OLDEST, GO_NEWEST] {
        let path = fixtures::build_for("arm64", "readers", ver, Variant::Plain).unwrap();
        let bin = GoBinary::open(&path).unwrap();
        let nested = bin.nested_calls();
        if ver != GO_NEWEST {
            assert_eq!(nested, &[], "go{ver}");
            continue;
        }
        let mut pairs: Vec<(u8, u8)> = nested.iter().map(|n| (n.wrapper, n.inner)).collect();
        pairs.sort();
        use routine::*;
        assert_eq!(
            pairs,
            vec![
                (MAPACCESS1, MAPACCESS2),
                (MAPACCESS1_FAST32, MAPACCESS2_FAST32),
                (MAPACCESS1_FAST64, MAPACCESS2_FAST64),
                (MAPACCESS1_FASTSTR, MAPACCESS2_FASTSTR),
            ],
            "go{ver}"
        );
        let dump = go_objdump(ver, "^runtime.mapaccess1_faststr$", &path);
        let n = nested.iter().find(|n| n.wrapper == MAPACCESS1_FASTSTR).unwrap();
        let call = dump.lines().find(|l| l.contains("CALL runtime.mapaccess2_faststr")).expect("the wrapper's call");
        let push = dump.lines().find(|l| l.contains("MOVD.W R30, -")).expect("the wrapper's frame");
        let frame: u64 = push.split("MOVD.W R30, -").nth(1).unwrap().split('(').next().unwrap().parse().unwrap();
        assert_eq!(n.sp_drop, Some(frame as u8), "go{ver}: {dump}");
        let call_addr = u64::from_str_radix(call.split_whitespace().nth(1).unwrap().trim_start_matches("0x"), 16).unwrap();
        assert_eq!(n.ret, call_addr + 4, "go{ver}: {call}");
    }
}

/// DWARF offsets are read once per binary (a decompress and walk of the
/// DWARF, while a process stands stopped at exec); every call after the
/// first gets the same answer from the cache. A stripped build has none.
#[test]
fn dwarf_offsets_are_read_once_per_binary() {
    let open = |v| GoBinary::open(&fixtures::build("writers", GO_NEWEST, v).unwrap()).unwrap();
    let (plain, stripped) = (open(Variant::Plain), open(Variant::Stripped));
    assert!(plain.dwarf_offsets.get().is_none());
    let first = plain.runtime_offsets().unwrap();
    assert_eq!(first.source, OffsetSource::Dwarf);
    assert_eq!(*plain.dwarf_offsets.get().unwrap(), Some(first));
    assert_eq!(plain.runtime_offsets().unwrap(), first);
    assert_eq!(stripped.runtime_offsets().unwrap().source, OffsetSource::VersionTable);
    assert_eq!(*stripped.dwarf_offsets.get().unwrap(), None);
}
