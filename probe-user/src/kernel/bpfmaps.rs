//! Resolving the (pid, fd) pairs the bpf(2) tracepoint recorded to kernel
//! BPF maps: `/proc/PID/fdinfo/FD` gives the map id, the map's info by id
//! gives its name and type. Resolved once per (pid, fd) and cached; an fd
//! closed before resolution stays unresolved (its counts are kept).

use std::collections::HashMap;

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
    }
}
