//! Naming the kernel BPF maps behind the fds the bpf(2) tracepoint saw.
//!
//! First choice: the kernel side names the map at the call (see
//! probe-ebpf's `bpf_syscall.rs`), with struct offsets read here from the
//! running kernel's BTF and checked by a calibration call on one of
//! mapaudit's own maps. Fallback, on a kernel whose BTF lacks a field or
//! whose calibration disagrees: `/proc/PID/fdinfo/FD` gives the map id
//! after the fact, the map's info by id its name and type — resolved once
//! per (pid, fd) and cached; an fd closed before then stays unresolved
//! (its counts are kept).

use std::collections::HashMap;

use btf_rs::{Backend, Btf, Type};
use probe_common::bpfmap::KernelOffsets;

/// Which way map fds were named, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// In the kernel, at each call.
    Kernel,
    /// From /proc after the fact, and why the kernel path is off.
    Userspace(String),
}

impl Resolution {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Userspace(_) => "userspace",
        }
    }
}

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// What the kernel side needs from the running kernel's BTF, read once.
pub struct BtfOffsets {
    /// `task_struct.pid`, for the raw fork tracepoint (None: the tracefs
    /// one, which carries the child's pid in its record).
    pub task_pid: Option<u32>,
    /// The fd → map chain the bpf(2) tracepoint follows, or why not.
    pub kernel: Result<KernelOffsets, String>,
    /// From an exec's `linux_binprm` to the file's inode (None: execs are
    /// always stopped, the inode being unknown).
    pub exec_inode: Option<probe_common::config::ExecInodeOffsets>,
}

/// Opens the kernel's BTF once and reads both. Mmap backend: parses only
/// the types asked for (~50 ms, not ~0.5 s). Kernels before 6.16 cannot
/// mmap the file (ENODEV; Linux 6.1 here, e.g. Debian 12's): those are
/// parsed from a plain read instead — for both offsets, so that such a
/// kernel also gets the raw fork tracepoint. `kernel`: whether the bpf(2)
/// chain is wanted (not with `--no-bpf-maps`): its lookups are skipped else.
pub fn btf_offsets(kernel: bool) -> BtfOffsets {
    let btf = Btf::from_file_with_backend(VMLINUX_BTF, Backend::Mmap)
        .or_else(|_| Btf::from_file_with_backend(VMLINUX_BTF, Backend::Cache))
        .map_err(|e| format!("cannot read {VMLINUX_BTF}: {e}"));
    match btf {
        Ok(btf) => BtfOffsets {
            task_pid: task_pid_offset(&btf),
            kernel: if kernel { kernel_offsets(&btf) } else { Err("not wanted".into()) },
            exec_inode: exec_inode_offsets(&btf),
        },
        Err(e) => BtfOffsets { task_pid: None, kernel: Err(e), exec_inode: None },
    }
}

/// The offsets the kernel side follows.
fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, String> {
    let off = |s: &str, m: &str| {
        let u32_off = member_offset(btf, s, m).ok_or_else(|| format!("the kernel's BTF has no {s}.{m}"))?;
        u32::try_from(u32_off).map_err(|_| format!("{s}.{m} at an offset out of range"))
    };
    Ok(KernelOffsets {
        task_files: off("task_struct", "files")?,
        files_fdt: off("files_struct", "fdt")?,
        fdt_max_fds: off("fdtable", "max_fds")?,
        fdt_fd: off("fdtable", "fd")?,
        file_f_op: off("file", "f_op")?,
        file_private_data: off("file", "private_data")?,
        map_type: off("bpf_map", "map_type")?,
        map_key_size: off("bpf_map", "key_size")?,
        map_id: off("bpf_map", "id")?,
        map_name: off("bpf_map", "name")?,
    })
}

/// `linux_binprm.file`, `file.f_inode`, `inode.i_ino`, `inode.i_sb`,
/// `super_block.s_dev`.
fn exec_inode_offsets(btf: &Btf) -> Option<probe_common::config::ExecInodeOffsets> {
    let off = |s: &str, m: &str| member_offset(btf, s, m).and_then(|o| u32::try_from(o).ok());
    Some(probe_common::config::ExecInodeOffsets {
        binprm_file: off("linux_binprm", "file")?,
        file_inode: off("file", "f_inode")?,
        inode_ino: off("inode", "i_ino")?,
        inode_sb: off("inode", "i_sb")?,
        sb_dev: off("super_block", "s_dev")?,
    })
}

/// Offset of `pid` in `struct task_struct`.
fn task_pid_offset(btf: &Btf) -> Option<u32> {
    member_offset(btf, "task_struct", "pid").and_then(|o| u32::try_from(o).ok())
}

/// Byte offset of `member` in `struct name`, looking into anonymous
/// structs and unions (fields move into them between kernel versions).
fn member_offset(btf: &Btf, name: &str, member: &str) -> Option<u64> {
    btf.resolve_types_by_name(name).ok()?.into_iter().find_map(|t| match t {
        Type::Struct(s) => find_member(btf, &s, member, 0, 0),
        _ => None,
    })
}

fn find_member(btf: &Btf, s: &btf_rs::Struct, member: &str, base_bits: u64, depth: u32) -> Option<u64> {
    if depth > 4 {
        return None;
    }
    for m in &s.members {
        let bits = base_bits + u64::from(m.bit_offset());
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == member {
            return bits.is_multiple_of(8).then_some(bits / 8);
        }
        if name.is_empty()
            && let Ok(Type::Struct(inner) | Type::Union(inner)) = btf.resolve_chained_type(m)
            && let Some(o) = find_member(btf, &inner, member, bits, depth + 1)
        {
            return Some(o);
        }
    }
    None
}

/// `BPF_MAP_TYPE_*` (UAPI: numbers never change) → the names the
/// userspace path gives (aya's `MapType` in snake case).
const MAP_TYPES: [&str; 34] = [
    "unspecified",
    "hash",
    "array",
    "program_array",
    "perf_event_array",
    "per_cpu_hash",
    "per_cpu_array",
    "stack_trace",
    "cgroup_array",
    "lru_hash",
    "lru_per_cpu_hash",
    "lpm_trie",
    "array_of_maps",
    "hash_of_maps",
    "dev_map",
    "sock_map",
    "cpu_map",
    "xsk_map",
    "sock_hash",
    "cgroup_storage",
    "reuseport_sock_array",
    "per_cpu_cgroup_storage",
    "queue",
    "stack",
    "sk_storage",
    "dev_map_hash",
    "struct_ops",
    "ring_buf",
    "inode_storage",
    "task_storage",
    "bloom_filter",
    "user_ring_buf",
    "cgrp_storage",
    "arena",
];

pub fn map_type_name(t: u32) -> Option<String> {
    MAP_TYPES.get(t as usize).map(|s| (*s).to_string())
}

/// A NUL-padded kernel name.
pub fn c_name(b: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]).into_owned();
    (!s.is_empty()).then_some(s)
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BpfMapId {
    pub id: u32,
    pub name: Option<String>,
    pub map_type: Option<String>,
}

#[derive(Default)]
pub struct Resolver {
    cache: HashMap<(u32, u32), Option<BpfMapId>>,
}

impl Resolver {
    pub fn resolve(&mut self, pid: u32, fd: u32) -> Option<BpfMapId> {
        self.cache.entry((pid, fd)).or_insert_with(|| resolve_now(pid, fd)).clone()
    }

    /// Forgets a process's fds (it exited, or its pid may be reused).
    pub fn forget(&mut self, pid: u32) {
        self.cache.retain(|k, _| k.0 != pid);
    }
}

fn resolve_now(pid: u32, fd: u32) -> Option<BpfMapId> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let id = fdinfo_map_id(&info)?;
    let (name, map_type) = match aya::maps::MapInfo::from_id(id) {
        Ok(mi) => (
            mi.name_as_str().map(str::to_string).filter(|s| !s.is_empty()),
            mi.map_type().ok().map(|t| snake(&format!("{t:?}"))),
        ),
        Err(_) => (None, None),
    };
    Some(BpfMapId { id, name, map_type })
}

/// `LruPerCpuHash` → `lru_per_cpu_hash`.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

pub fn fdinfo_map_id(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.strip_prefix("map_id:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_fdinfo() {
        let s = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nmap_type:\t1\nkey_size:\t4\nmap_id:\t42\nfrozen:\t0\n";
        assert_eq!(super::fdinfo_map_id(s), Some(42));
        assert_eq!(super::fdinfo_map_id("pos:\t0\n"), None);
        assert_eq!(super::snake("LruPerCpuHash"), "lru_per_cpu_hash");
        assert_eq!(super::snake("Hash"), "hash");
        assert_eq!(super::map_type_name(1).as_deref(), Some("hash"));
        assert_eq!(super::map_type_name(10).as_deref(), Some("lru_per_cpu_hash"));
        assert_eq!(super::map_type_name(27).as_deref(), Some("ring_buf"));
        assert_eq!(super::map_type_name(99), None);
        assert_eq!(super::c_name(b"conntrack\0\0\0"), Some("conntrack".into()));
        assert_eq!(super::c_name(b"\0\0"), None);
    }

    /// Every field the kernel side follows is in this machine's kernel.
    #[test]
    fn this_kernels_btf_has_every_offset() {
        let o = super::btf_offsets(true);
        let k = o.kernel.unwrap();
        assert!(o.task_pid.is_some_and(|p| p > 0), "task_struct.pid");
        assert_eq!(k.fdt_max_fds, 0, "fdtable starts with max_fds");
        assert!(k.task_files > 0 && k.map_name > k.map_type);
    }
}
