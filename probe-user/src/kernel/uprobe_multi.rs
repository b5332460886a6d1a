//! uprobe_multi links (Linux ≥ 6.6): every probe point of one executable in
//! one BPF link.
//!
//! Why: the kernel detaches a perf-event uprobe with one grace period each,
//! and serialises them (~60–70 ms per uprobe here, whatever the number of
//! threads dropping them): a Go program's ~15 points cost ~1 s at the end of
//! every `record`, and every `--max-overhead` detach. A uprobe_multi link
//! unregisters all its points and waits for one grace period; attaching is
//! one syscall instead of two per point.
//!
//! aya 0.14 has no API for them, and the kernel links only a program loaded
//! with `expected_attach_type = BPF_TRACE_UPROBE_MULTI`, which aya's `UProbe`
//! never sets. So the probe program is loaded here from the same embedded
//! object with aya-obj (aya's own ELF parser), relocated against the maps
//! aya created: the same maps, so counts land where the rest of mapaudit
//! reads them. The program's code is unchanged: `bpf_get_attach_cookie`
//! returns each point's cookie under both kinds of link.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};

use anyhow::{Context as _, bail};

/// `enum bpf_cmd` values (stable kernel ABI).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_PROG_TYPE_KPROBE`: uprobe programs are kprobe programs.
const BPF_PROG_TYPE_KPROBE: u32 = 2;
/// `enum bpf_attach_type`'s `BPF_TRACE_UPROBE_MULTI`.
const BPF_TRACE_UPROBE_MULTI: u32 = 48;

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`
/// (the kernel zero-fills what a shorter attr leaves out).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_LINK_CREATE` with its `uprobe_multi` member.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    multi_flags: u32,
    pid: u32,
    _pad: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a #[repr(C)] prefix of `union bpf_attr` whose
    // pointers (if any) the caller keeps alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// The data of every map aya created, by name.
fn map_fds(ebpf: &aya::Ebpf) -> anyhow::Result<HashMap<String, RawFd>> {
    use aya::maps::Map;
    let mut out = HashMap::new();
    for (name, map) in ebpf.maps() {
        let data = match map {
            Map::Array(d)
            | Map::HashMap(d)
            | Map::LruHashMap(d)
            | Map::PerCpuArray(d)
            | Map::PerCpuHashMap(d)
            | Map::PerCpuLruHashMap(d)
            | Map::RingBuf(d)
            | Map::PerfEventArray(d)
            | Map::StackTraceMap(d)
            | Map::Unsupported(d) => d,
            _ => bail!("map {name}: a kind the uprobe_multi loader does not know"),
        };
        out.insert(name.to_string(), data.fd().as_fd().as_raw_fd());
    }
    Ok(out)
}

/// A probe program loaded for uprobe_multi links.
#[derive(Debug)]
pub struct MultiProgram {
    fd: OwnedFd,
}

impl MultiProgram {
    /// Loads program `name` of `object` (the ELF aya loaded into `ebpf`),
    /// using `ebpf`'s maps.
    pub fn load(object: &[u8], ebpf: &aya::Ebpf, name: &str) -> anyhow::Result<Self> {
        let insns = relocated(object, ebpf, name)?;
        let license = c"GPL";
        let mut prog_name = [0u8; 16];
        for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
            *d = s;
        }
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_KPROBE,
            insn_cnt: u32::try_from(insns.len()).context("program too long")?,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name,
            expected_attach_type: BPF_TRACE_UPROBE_MULTI,
            ..Default::default()
        };
        let fd = match sys_bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => fd,
            Err(e) => {
                // Again with the verifier's log, for the error.
                let mut log = vec![0u8; 1 << 20];
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                let _ = sys_bpf(BPF_PROG_LOAD, &mut attr);
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                bail!("loading {name} for uprobe_multi: {e}; verifier: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
            }
        };
        // SAFETY: a new fd the kernel just returned, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Self { fd })
    }

    /// `load`, then proves the kernel links it; None (with the reason
    /// logged) on kernels before 6.6 or if loading fails: the caller falls
    /// back to aya's perf-event uprobes.
    pub fn load_if_supported(object: &[u8], ebpf: &aya::Ebpf, name: &str) -> Option<Self> {
        let t = std::time::Instant::now();
        let prog = match Self::load(object, ebpf, name) {
            Ok(p) => p,
            Err(e) => {
                log::debug!("uprobe_multi: {e:#}; using one perf-event uprobe per point");
                return None;
            }
        };
        match prog.probe_kernel() {
            Ok(()) => {
                log::debug!("uprobe_multi: {name} loaded in {:?}", t.elapsed());
                Some(prog)
            }
            Err(e) => {
                log::debug!("uprobe_multi links unsupported by this kernel ({e}); using one perf-event uprobe per point");
                None
            }
        }
    }

    /// Asks the kernel to link at a path that is not a file: a kernel with
    /// uprobe_multi gets as far as the path and refuses it (EBADF), one
    /// without refuses the attach type (EINVAL) — libbpf probes the same way.
    fn probe_kernel(&self) -> std::io::Result<()> {
        match self.link(c"/", &[(0, 0)], None) {
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(()),
            Err(e) => Err(e),
            Ok(_link) => Ok(()), // closed at once
        }
    }

    /// Links this program at `points` ((file offset, cookie)) of the
    /// executable `file`; `pid`: only that process (None: every process).
    /// Dropping the returned link detaches every point at once.
    pub fn attach(&self, file: &std::fs::File, points: &[(u64, u64)], pid: Option<u32>) -> std::io::Result<OwnedFd> {
        let path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(std::io::Error::other)?;
        self.link(&path, points, pid)
    }

    fn link(&self, path: &CStr, points: &[(u64, u64)], pid: Option<u32>) -> std::io::Result<OwnedFd> {
        let offsets: Vec<u64> = points.iter().map(|p| p.0).collect();
        let cookies: Vec<u64> = points.iter().map(|p| p.1).collect();
        let mut attr = LinkCreateAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            attach_type: BPF_TRACE_UPROBE_MULTI,
            path: path.as_ptr() as u64,
            offsets: offsets.as_ptr() as u64,
            cookies: cookies.as_ptr() as u64,
            cnt: u32::try_from(points.len()).map_err(std::io::Error::other)?,
            pid: pid.unwrap_or(0),
            ..Default::default()
        };
        let fd = sys_bpf(BPF_LINK_CREATE, &mut attr)?;
        // SAFETY: a new fd the kernel just returned, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// (run time, run count) from the kernel's BPF stats (counted only while
    /// they are enabled).
    pub fn stats(&self) -> Option<(std::time::Duration, u64)> {
        let mut info = ProgInfoHead::default();
        let mut attr = InfoAttr {
            bpf_fd: self.fd.as_raw_fd() as u32,
            info_len: size_of::<ProgInfoHead>() as u32,
            info: &mut info as *mut ProgInfoHead as u64,
        };
        sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).ok()?;
        Some((std::time::Duration::from_nanos(info.run_time_ns), info.run_cnt))
    }
}

/// `struct bpf_prog_info` up to `run_cnt` (the kernel fills what fits).
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    _head: [u64; 24],
    run_time_ns: u64,
    run_cnt: u64,
}

/// Program `name`'s instructions, with map references pointing at `ebpf`'s
/// maps and its calls linked. No BTF relocation: the probe programs take
/// every offset from userspace (cookies, `GLOBAL`), and a test proves they
/// carry no CO-RE relocation.
fn relocated(object: &[u8], ebpf: &aya::Ebpf, name: &str) -> anyhow::Result<Vec<aya_obj::generated::bpf_insn>> {
    let mut obj = aya_obj::Object::parse(object).context("parsing the eBPF object")?;
    let fds = map_fds(ebpf)?;
    let defs = obj.maps.clone();
    // Every map must be matched by name: aya-obj would otherwise fall back
    // to the section's (any map of the section) and load a wrong program.
    if let Some(missing) = defs.keys().find(|n| !fds.contains_key(*n)) {
        bail!("map {missing} is not among the loaded maps (taken out before this load?)");
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_maps(
        defs.iter().filter_map(|(n, def)| fds.get(n).map(|fd| (n.as_str(), *fd, def))),
        &text_sections,
    )
    .context("relocating map references")?;
    obj.relocate_calls(&text_sections).context("linking calls")?;
    let prog = obj.programs.get(name).with_context(|| format!("program {name} missing from the eBPF object"))?;
    let func = obj.functions.get(&prog.function_key()).with_context(|| format!("program {name} has no code"))?;
    Ok(func.instructions.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_have_the_kernel_layout() {
        // Offsets from include/uapi/linux/bpf.h.
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(LinkCreateAttr, path), 16);
        assert_eq!(std::mem::offset_of!(LinkCreateAttr, cnt), 48);
        assert_eq!(std::mem::offset_of!(LinkCreateAttr, pid), 56);
        assert_eq!(std::mem::offset_of!(ProgInfoHead, run_time_ns), 192);
        assert_eq!(std::mem::offset_of!(ProgInfoHead, run_cnt), 200);
    }

    /// The second load skips BTF relocation: it must have nothing to do.
    #[test]
    fn probe_programs_carry_no_core_relocations() {
        let target = aya_obj::btf::Btf::from_sys_fs().expect("/sys/kernel/btf/vmlinux (a kernel with BTF)");
        let object = super::super::loader::embedded_object();
        if object.is_empty() {
            return; // built with MAPAUDIT_SKIP_EBPF
        }
        let plain = aya_obj::Object::parse(object).unwrap();
        let mut core = aya_obj::Object::parse(object).unwrap();
        core.relocate_btf(&target).unwrap();
        for (key, f) in &plain.functions {
            let g = &core.functions[key];
            let same = f.instructions.len() == g.instructions.len()
                && f.instructions.iter().zip(&g.instructions).all(|(a, b)| a.code == b.code && a.imm == b.imm && a.off == b.off);
            assert!(same, "function {} changes under CO-RE relocation", f.name);
        }
    }
}
