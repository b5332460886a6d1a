//! Process lifecycle tracepoints: follow the descendants of `record -- CMD`,
//! stop each of them at exec until userspace has attached its probes (so no
//! write is missed), and report exits.
//!
//! Raw tracepoints, not tracefs ones: the kernel detaches a tracefs (perf
//! event) tracepoint after waiting for grace periods, serialised (~50 ms
//! each here, on every `record`'s exit path); a raw tracepoint link is
//! released without waiting. Exec and exit need nothing from their
//! arguments (the task is the current one); fork reads the child's pid from
//! its `task_struct` at an offset from the kernel's BTF, with the tracefs
//! version as the fallback.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_send_signal},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use probe_common::{
    config::{Global, Tracked},
    events::{EventHeader, Exec, Exit, KIND_EXEC, KIND_EXIT},
    lost,
    maps::InodeKey,
};

use crate::maps::{ATTACHED_INODES, EVENTS, EXEC_STOPPED, TRACKED, count_lost, global};
use crate::util::{RB_FORCE_WAKEUP, pid_tid, submit_flags};

const SIGSTOP: u32 = 19;

/// The tracked parent's entry, if the forking process is tracked.
fn tracked_parent() -> Option<Tracked> {
    let (pid, _) = pid_tid();
    // SAFETY: TRACKED values are plain data.
    unsafe { TRACKED.get(&pid) }.copied()
}

fn track_child(child: i32, parent: &Tracked) {
    // Threads are inserted too (cheaper than telling them apart here); every
    // task's entry is removed at its exit, so the map stays bounded. A new
    // process has not exec'd yet.
    let t = Tracked { execd: 0, ..*parent };
    if TRACKED.insert(&(child as u32), &t, 0).is_err() {
        count_lost(lost::TRACKED_FULL);
    }
}

/// Fallback (no `task_struct.pid` offset): the tracefs tracepoint.
#[tracepoint]
pub fn sched_fork(ctx: TracePointContext) -> u32 {
    let Some(parent) = tracked_parent() else { return 0 };
    let off = global().fork_child_pid_off as usize;
    // SAFETY: the offset comes from the tracepoint's format file.
    if let Ok(child) = unsafe { ctx.read_at::<i32>(off) } {
        track_child(child, &parent);
    }
    0
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_fork_raw(ctx: RawTracePointContext) -> i32 {
    let Some(parent) = tracked_parent() else { return 0 };
    let child: u64 = ctx.arg(1);
    let off = global().task_pid_off as u64;
    // SAFETY: bpf_probe_read_kernel checks the address; the offset is
    // task_struct.pid's, from the kernel's BTF.
    if let Ok(pid) = unsafe { bpf_probe_read_kernel((child + off) as *const i32) } {
        track_child(pid, &parent);
    }
    0
}

/// The exec'd file's inode: `linux_binprm.file->f_inode`, its `i_ino` and
/// its superblock's `s_dev` (offsets from the kernel's BTF).
fn exec_inode(bprm: u64, g: &Global) -> Option<InodeKey> {
    let o = &g.exec_inode;
    let read = |addr: u64| -> Option<u64> {
        // SAFETY: bpf_probe_read_kernel checks the address.
        unsafe { bpf_probe_read_kernel(addr as *const u64) }.ok()
    };
    let file = read(bprm + o.binprm_file as u64)?;
    let inode = read(file + o.file_inode as u64)?;
    let ino = read(inode + o.inode_ino as u64)?;
    let sb = read(inode + o.inode_sb as u64)?;
    // SAFETY: as above; `s_dev` is a `dev_t` (u32).
    let dev = unsafe { bpf_probe_read_kernel((sb + o.sb_dev as u64) as *const u32) }.ok()?;
    Some(InodeKey { ino, dev, _pad: 0 })
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_exec(ctx: RawTracePointContext) -> i32 {
    let (pid, tid) = pid_tid();
    let slot = TRACKED.get_ptr_mut(&pid);
    // SAFETY: TRACKED values are plain data.
    let tracked: Option<Tracked> = slot.map(|p| unsafe { *p });
    let mut stop = matches!(tracked, Some(t) if t.stop_on_exec != 0);
    if tracked.is_none() && global().exec_all == 0 {
        return 0;
    }
    let g = global();
    let inode = if g.exec_skip_attached != 0 { exec_inode(ctx.arg(2), &g) } else { None };
    // SAFETY: plain data, only tested for presence.
    let attached = inode.is_some_and(|k| unsafe { ATTACHED_INODES.get(&k) }.is_some());
    // A program already attached for every process of its file needs no
    // attach, so no stop: userspace names the process from the event (the
    // inode), even once it is gone. Only at a process's first exec since
    // its fork: before it, the pid ran its parent's image (a Go child of a
    // fork runs no Go code before exec), never an audited program whose
    // last counts userspace must read before the new program's.
    if stop && attached && tracked.is_some_and(|t| t.execd == 0) {
        stop = false;
    }
    if let Some(p) = slot {
        // SAFETY: this process's own entry; only its own exec writes it.
        unsafe { (*p).execd = 1 };
    }
    // The event first: a process stopped without one would wait for a
    // resume nobody knows to send.
    let Some(mut entry) = EVENTS.reserve::<Exec>(0) else {
        count_lost(lost::RINGBUF_FULL);
        return 0;
    };
    // SAFETY: no preconditions.
    let ktime_ns = unsafe { bpf_ktime_get_ns() };
    if stop {
        // Recorded before the stop, so that whoever reads the map after this
        // program ran (the exec guard, should mapaudit die before it reads
        // the event) finds every process stopped here.
        if EXEC_STOPPED.insert(&pid, &ktime_ns, 0).is_err() {
            count_lost(lost::EXEC_STOPPED_FULL);
        }
        // SAFETY: signals the current task, which is the one exec'ing; it
        // stops before running the new image's first instruction.
        unsafe { bpf_send_signal(SIGSTOP) };
    }
    let k = inode.unwrap_or_default();
    entry.write(Exec {
        hdr: EventHeader { kind: KIND_EXEC, pid, tid, _pad: 0, ktime_ns },
        stopped: stop as u32,
        attached: attached as u32,
        ino: k.ino,
        dev: k.dev,
        _pad: 0,
    });
    // A stopped process waits for userspace, and a new program elsewhere
    // should be attached before it writes much: wake userspace now (execs
    // are rare next to map writes).
    entry.submit(RB_FORCE_WAKEUP);
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_exit(_ctx: RawTracePointContext) -> i32 {
    let (pid, tid) = pid_tid();
    // SAFETY: TRACKED values are plain data.
    let tracked = unsafe { TRACKED.get(&tid) }.is_some();
    if tracked {
        let _ = TRACKED.remove(&tid);
        if pid == tid {
            // Gone: nothing left to resume.
            let _ = EXEC_STOPPED.remove(&pid);
        }
    }
    if !tracked || pid != tid {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<Exit>(0) else {
        count_lost(lost::RINGBUF_FULL);
        return 0;
    };
    // SAFETY: no preconditions.
    let ktime_ns = unsafe { bpf_ktime_get_ns() };
    entry.write(Exit { hdr: EventHeader { kind: KIND_EXIT, pid, tid, _pad: 0, ktime_ns } });
    entry.submit(submit_flags());
    0
}
