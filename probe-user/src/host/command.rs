//! What a command started under audit (`-- CMD`) inherits from mapaudit:
//! the identity of the user mapaudit acts for (uid, gid and — as
//! `initgroups(3)` sets them — supplementary groups), that user's
//! environment (`identity::Identity::child_env`), and no descriptor of
//! mapaudit's own (BPF maps, links, ring buffer, perf events, logs): only
//! stdio and whatever mapaudit itself inherited (a jobserver, say).

use std::collections::BTreeSet;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::OnceLock;

use crate::host::identity::Identity;

/// Descriptors open when mapaudit started: its parent's to pass on.
static INHERITED: OnceLock<BTreeSet<RawFd>> = OnceLock::new();

/// Notes the descriptors mapaudit was started with. Call first thing,
/// before anything is opened (`lib::run` does).
pub fn note_inherited_descriptors() {
    let _ = INHERITED.set(open_descriptors());
}

fn open_descriptors() -> BTreeSet<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Sets close-on-exec on every descriptor mapaudit opened itself that lacks
/// it. aya, tokio and std open theirs close-on-exec already (the kernel's
/// bpf(2) always does, perf events get PERF_FLAG_FD_CLOEXEC); this makes it
/// a guarantee rather than an observation, whatever a library does.
/// Returns the descriptors it had to seal.
pub fn seal_own_descriptors() -> Vec<RawFd> {
    let inherited = INHERITED.get();
    let mut sealed = Vec::new();
    for fd in open_descriptors() {
        if fd <= 2 || inherited.is_some_and(|s| s.contains(&fd)) {
            continue;
        }
        // SAFETY: `fd` was listed open just now and is only borrowed for two
        // fcntl calls; if it was closed since (the directory listing's own
        // descriptor is), fcntl fails with EBADF and nothing happens.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        if let Ok(flags) = rustix::io::fcntl_getfd(bfd)
            && !flags.contains(rustix::io::FdFlags::CLOEXEC)
            && rustix::io::fcntl_setfd(bfd, flags | rustix::io::FdFlags::CLOEXEC).is_ok()
        {
            sealed.push(fd);
        }
    }
    if !sealed.is_empty() {
        log::debug!("descriptors {sealed:?} were inheritable: set close-on-exec before starting the command");
    }
    sealed
}

/// Prepares `cmd` to run as `who` (None: as mapaudit itself, environment
/// untouched) and seals mapaudit's descriptors.
pub fn configure(cmd: &mut tokio::process::Command, who: Option<&Identity>) {
    seal_own_descriptors();
    let Some(who) = who else { return };
    for (k, v) in who.child_env(std::env::var_os("PATH")) {
        cmd.env(k, v);
    }
    // Root's runtime directory (set when root started mapaudit from a login
    // session) is not the user's; sudo drops it too.
    cmd.env_remove("XDG_RUNTIME_DIR");
    let groups: Vec<rustix::process::Gid> = who.groups.iter().map(|g| rustix::process::Gid::from_raw(*g)).collect();
    let gid = rustix::process::Gid::from_raw(who.gid);
    let uid = rustix::process::Uid::from_raw(who.uid);
    // std's `uid()`/`gid()` would clear the supplementary groups (and its
    // `groups()` is unstable): do it all here, groups first, uid last.
    // SAFETY: the closure runs in the forked child before exec; it only makes
    // raw syscalls (setgroups, setresgid, setresuid — in the single-threaded
    // child, per-thread is per-process) on data prepared before the fork, and
    // neither allocates nor takes locks.
    unsafe {
        cmd.pre_exec(move || {
            rustix::thread::set_thread_groups(&groups)?;
            rustix::thread::set_thread_res_gid(gid, gid, gid)?;
            rustix::thread::set_thread_res_uid(uid, uid, uid)?;
            Ok(())
        });
    }
}
