//! Finding what to audit: processes, their executables (through
//! `/proc/PID/exe`, which also reaches binaries inside containers and deleted
//! ones), identities that survive pid reuse, and the PIE load bias.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use procfs::FromRead as _;
use procfs::process::Stat;

/// A process's executable, identified by the file it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcExe {
    pub pid: u32,
    /// `/proc/PID/exe`: the path uprobes attach through.
    pub path: PathBuf,
    /// What the link points to, for display (may end in " (deleted)").
    pub display: String,
    pub dev: u64,
    pub ino: u64,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22): with
    /// the pid, it names a process uniquely across pid reuse.
    pub start_time: u64,
}

impl ProcExe {
    pub fn key(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

pub fn proc_exe(pid: u32) -> std::io::Result<ProcExe> {
    let path = PathBuf::from(format!("/proc/{pid}/exe"));
    let meta = fs::metadata(&path)?;
    let display = fs::read_link(&path).map(|p| p.display().to_string()).unwrap_or_default();
    Ok(ProcExe { pid, path, display, dev: meta.dev(), ino: meta.ino(), start_time: start_time(pid).unwrap_or(0) })
}

/// Cheap pre-check from the ELF section headers alone (read lazily): false
/// only when the file is surely not a Go executable (not ELF, or ELF with
/// section headers but neither `.go.buildinfo` nor `.gopclntab`).
pub fn may_be_go(path: &std::path::Path) -> bool {
    use object::{Object as _, ObjectSection as _};
    let Ok(file) = fs::File::open(path) else { return false };
    let cache = object::ReadCache::new(file);
    let Ok(obj) = object::File::parse(&cache) else { return false };
    let mut sections = obj.sections().peekable();
    if sections.peek().is_none() {
        return true; // no section headers: let the full parser decide
    }
    sections.any(|s| matches!(s.name(), Ok(".go.buildinfo" | ".gopclntab" | ".data.rel.ro.gopclntab")))
}

/// `/proc/PID/stat`, read here (the I/O errors are std's) and parsed by
/// `procfs` (the command name may hold spaces and parentheses).
pub fn stat(pid: u32) -> std::io::Result<Stat> {
    parse_stat(&fs::read(format!("/proc/{pid}/stat"))?)
}

pub fn parse_stat(text: &[u8]) -> std::io::Result<Stat> {
    Stat::from_read(text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// Start time in clock ticks since boot (field 22).
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).ok().map(|s| s.starttime)
}

/// Process state letter (R, S, Z, …).
pub fn state(pid: u32) -> Option<char> {
    stat(pid).ok().map(|s| s.state)
}

/// Kept by hand: one read of a one-line file, nothing to parse.
pub fn comm(pid: u32, tid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

/// Kept by hand: only the pids are needed, and `procfs::process::all_processes`
/// opens every `/proc/PID` directory to make a `Process` of it.
pub fn all_pids() -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else { return Vec::new() };
    rd.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// The load bias of the executable `(dev, ino)` in `pid`: runtime address
/// minus link-time address. Zero for non-PIE binaries. `segments` are the
/// binary's PT_LOAD (vaddr, file offset) pairs.
pub fn load_bias(pid: u32, ino: u64, segments: &[(u64, u64)]) -> Option<u64> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    parse_load_bias(&maps, ino, segments)
}

/// Kept by hand: it stops at the file's first mapping, where procfs's
/// `MemoryMaps` would parse every mapping of a large process first.
fn parse_load_bias(maps: &str, ino: u64, segments: &[(u64, u64)]) -> Option<u64> {
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (range, _perms, off, _dev, inode) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        if inode.parse::<u64>().ok()? != ino {
            continue;
        }
        let start = u64::from_str_radix(range.split('-').next()?, 16).ok()?;
        let off = u64::from_str_radix(off, 16).ok()?;
        // The segment this mapping comes from: the one with the greatest
        // file offset not above the mapping's, page-aligned.
        let (vaddr, seg_off) = segments
            .iter()
            .filter(|(_, o)| o & !0xfff <= off)
            .max_by_key(|(_, o)| *o)?;
        let link = (vaddr & !0xfff) + (off - (seg_off & !0xfff));
        return Some(start.wrapping_sub(link));
    }
    None
}

/// The niceness mapaudit's own threads take while it holds processes
/// stopped at exec (`-- CMD`): see [`favour_own_threads`].
pub const OWN_NICE: i32 = -10;

/// Runs every thread mapaudit has now (threads it starts later inherit it)
/// at `nice`. With `-- CMD`, each program the command execs stands stopped
/// until mapaudit's loop has attached to it and continued it; on a machine
/// the command itself saturates (a `go build` on every core), that loop
/// waited its turn behind the build for hundreds of milliseconds per exec.
/// Called after the command is started, so the command and everything it
/// forks keep their own priority; mapaudit's CPU time does not change, only
/// who runs first. Best effort: without CAP_SYS_NICE the threads stay as
/// they are. Returns how many threads were changed.
pub fn favour_own_threads(nice: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0 };
    let mut changed = 0;
    for tid in dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()) {
        // PRIO_PROCESS with a thread id sets that thread's niceness on Linux.
        if rustix::process::setpriority_process(rustix::process::Pid::from_raw(tid), nice).is_ok() {
            changed += 1;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_of_pie_and_non_pie() {
        let maps = "555555554000-555555555000 r--p 00000000 fd:01 1234 /x\n\
                    555555555000-555555600000 r-xp 00001000 fd:01 1234 /x\n";
        // PIE linked at 0: bias is the mapping start.
        assert_eq!(parse_load_bias(maps, 1234, &[(0, 0), (0x1000, 0x1000)]), Some(0x555555554000));
        let maps = "00400000-00500000 r-xp 00000000 fd:01 99 /y\n";
        assert_eq!(parse_load_bias(maps, 99, &[(0x400000, 0)]), Some(0));
        assert_eq!(parse_load_bias(maps, 98, &[(0x400000, 0)]), None);
    }

    #[test]
    fn go_pre_check() {
        assert!(!may_be_go(std::path::Path::new("/bin/sh")));
        assert!(!may_be_go(std::path::Path::new("/etc/passwd")));
        let go = crate::fixtures::build("writers", crate::fixtures::GO_NEWEST, crate::fixtures::Variant::Stripped).unwrap();
        assert!(may_be_go(&go));
        let pie = crate::fixtures::build("writers", crate::fixtures::GO_OLDEST, crate::fixtures::Variant::PieStripped).unwrap();
        assert!(may_be_go(&pie));
    }

    #[test]
    fn self_is_found() {
        let me = proc_exe(std::process::id()).unwrap();
        assert!(me.ino != 0 && me.start_time > 0);
        assert!(matches!(state(std::process::id()), Some('R' | 'S')));
        assert_eq!(state(u32::MAX), None);
    }
}
