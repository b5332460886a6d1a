//! Environment checks before anything is loaded, each failing with what to
//! do: privileges, tracefs, BTF, kernel version, memlock.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(
        "mapaudit needs root, or the capabilities {missing} (CAP_SYS_ADMIN is needed for uprobes on kernels with the perf_event_paranoid hardening).\n  \
         Run it with sudo, or grant them: sudo setcap cap_bpf,cap_perfmon,cap_sys_admin,cap_kill,cap_dac_read_search+ep $(command -v mapaudit)"
    )]
    Privileges { missing: String },
    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({0}).\n  \
         Mount it: sudo mount -t tracefs nodev /sys/kernel/tracing"
    )]
    Tracefs(String),
    #[error(
        "tracefs is mounted but not readable by this user: run as root, or add CAP_DAC_READ_SEARCH to the \
         capabilities (see README \"Privileges\")"
    )]
    TracefsUnreadable,
    #[error("this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): mapaudit needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    Btf,
    #[error("kernel {0} is too old: mapaudit needs Linux 5.15 or newer (uprobe attach cookies)")]
    Kernel(String),
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Names of the needed capabilities missing from an effective set.
pub fn missing_caps(cap_eff: u64) -> Vec<&'static str> {
    [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")]
        .into_iter()
        .filter(|(bit, _)| cap_eff & (1u64 << bit) == 0)
        .map(|(_, n)| n)
        .collect()
}

fn cap_eff() -> u64 {
    use procfs::FromRead as _;
    procfs::process::Status::from_file("/proc/self/status").map(|s| s.capeff).unwrap_or(0)
}

pub fn check_privileges() -> Result<(), EnvError> {
    let missing = missing_caps(cap_eff());
    if missing.is_empty() {
        Ok(())
    } else {
        Err(EnvError::Privileges { missing: missing.join(", ") })
    }
}

/// Parses "6.18.44-fc" → (6, 18).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The oldest kernel with everything mapaudit uses (uprobe attach cookies).
pub const MIN_KERNEL: (u32, u32) = (5, 15);

pub fn check_kernel_release(release: &str) -> Result<(), EnvError> {
    match kernel_version(release) {
        Some(v) if v < MIN_KERNEL => Err(EnvError::Kernel(release.to_string())),
        _ => Ok(()),
    }
}

pub fn check_kernel() -> Result<(), EnvError> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    check_kernel_release(release.trim())
}

pub fn check_btf_at(path: &Path) -> Result<(), EnvError> {
    if path.exists() { Ok(()) } else { Err(EnvError::Btf) }
}

pub fn check_btf() -> Result<(), EnvError> {
    check_btf_at(Path::new("/sys/kernel/btf/vmlinux"))
}

/// Tracepoints are looked up in tracefs; mount it when it is missing.
pub fn ensure_tracefs() -> Result<(), EnvError> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    ensure_tracefs_with(&["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"], &mounts, || {
        nix::mount::mount(Some("nodev"), "/sys/kernel/tracing", Some("tracefs"), nix::mount::MsFlags::empty(), None::<&str>)
            .map_err(std::io::Error::from)
    })
}

fn ensure_tracefs_with(dirs: &[&str], mounts: &str, mount: impl FnOnce() -> std::io::Result<()>) -> Result<(), EnvError> {
    if dirs.iter().any(|d| Path::new(d).is_dir()) {
        return Ok(());
    }
    // Mounted but not readable (tracefs is root-only): mounting again is
    // not the fix.
    if mounts.lines().any(|l| l.split_whitespace().nth(2) == Some("tracefs")) {
        return Err(EnvError::TracefsUnreadable);
    }
    mount().map_err(|e| EnvError::Tracefs(e.to_string()))?;
    log::info!("mounted tracefs at /sys/kernel/tracing");
    Ok(())
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
pub fn raise_memlock() {
    use nix::sys::resource::{RLIM_INFINITY, Resource, setrlimit};
    let _ = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY);
}

pub fn check_all() -> Result<(), EnvError> {
    check_privileges()?;
    check_kernel()?;
    check_btf()?;
    ensure_tracefs()?;
    raise_memlock();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_missing_capabilities() {
        assert_eq!(missing_caps(0), vec!["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"]);
        assert_eq!(missing_caps(1 << CAP_BPF | 1 << CAP_SYS_ADMIN), vec!["CAP_PERFMON"]);
        assert!(missing_caps(u64::MAX).is_empty());
    }

    #[test]
    fn too_old_kernel_names_the_minimum() {
        let e = check_kernel_release("5.10.0-28-amd64").unwrap_err().to_string();
        assert!(e.contains("5.10.0-28-amd64") && e.contains("5.15 or newer"), "{e}");
        assert!(check_kernel_release("5.15.0").is_ok());
        assert!(check_kernel_release("6.18.44").is_ok());
    }

    #[test]
    fn missing_btf_says_what_is_needed() {
        let e = check_btf_at(Path::new("/nonexistent/vmlinux")).unwrap_err().to_string();
        assert!(e.contains("CONFIG_DEBUG_INFO_BTF"), "{e}");
    }

    #[test]
    fn unmountable_tracefs_says_how_to_mount_it() {
        let e = ensure_tracefs_with(&["/nonexistent/events"], "", || Err(std::io::Error::from_raw_os_error(libc::EPERM)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mount -t tracefs nodev /sys/kernel/tracing") && e.contains("not permitted"), "{e}");
        assert!(ensure_tracefs_with(&["/nonexistent/events"], "", || Ok(())).is_ok());
        assert!(ensure_tracefs_with(&["/proc"], "", || panic!("must not mount")).is_ok());
        let mounted = "tracefs /sys/kernel/tracing tracefs rw,nosuid 0 0\n";
        let e = ensure_tracefs_with(&["/nonexistent/events"], mounted, || panic!("must not mount")).unwrap_err().to_string();
        assert!(e.contains("CAP_DAC_READ_SEARCH"), "{e}");
    }

    #[test]
    fn parses_kernel_release() {
        assert_eq!(kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(kernel_version("x"), None);
    }
}
