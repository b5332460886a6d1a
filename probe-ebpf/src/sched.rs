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
    config::Tracked,
    events::{EventHeader, Exec, Exit, KIND_EXEC, KIND_EXIT},
    lost,
};

use crate::maps::{EVENTS, EXEC_STOPPED, TRACKED, count_lost, global};
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
    // task's entry is removed at its exit, so the map stays bounded.
    if TRACKED.insert(&(child as u32), parent, 0).is_err() {
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

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_exec(_ctx: RawTracePointContext) -> i32 {
    let (pid, tid) = pid_tid();
    // SAFETY: TRACKED values are plain data.
    let tracked: Option<Tracked> = unsafe { TRACKED.get(&pid) }.copied();
    let stop = matches!(tracked, Some(t) if t.stop_on_exec != 0);
    if tracked.is_none() && global().exec_all == 0 {
        return 0;
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
    entry.write(Exec {
        hdr: EventHeader { kind: KIND_EXEC, pid, tid, _pad: 0, ktime_ns },
        stopped: stop as u32,
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
