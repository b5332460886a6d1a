//! Process lifecycle tracepoints: follow the descendants of `record -- CMD`,
//! stop each of them at exec until userspace has attached its probes (so no
//! write is missed), and report exits.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_send_signal},
    macros::tracepoint,
    programs::TracePointContext,
};
use probe_common::{
    config::Tracked,
    events::{EventHeader, Exec, Exit, KIND_EXEC, KIND_EXIT},
    lost,
};

use crate::maps::{EVENTS, TRACKED, count_lost, global};
use crate::util::{RB_FORCE_WAKEUP, pid_tid, submit_flags};

const SIGSTOP: u32 = 19;

#[tracepoint]
pub fn sched_fork(ctx: TracePointContext) -> u32 {
    let (pid, _) = pid_tid();
    // SAFETY: TRACKED values are plain data.
    let Some(parent) = (unsafe { TRACKED.get(&pid) }).copied() else {
        return 0;
    };
    let off = global().fork_child_pid_off as usize;
    // SAFETY: the offset comes from the tracepoint's format file.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(off) }) else {
        return 0;
    };
    // Threads are inserted too (cheaper than telling them apart here); every
    // task's entry is removed at its exit, so the map stays bounded.
    if TRACKED.insert(&(child as u32), &parent, 0).is_err() {
        count_lost(lost::TRACKED_FULL);
    }
    0
}

#[tracepoint]
pub fn sched_exec(_ctx: TracePointContext) -> u32 {
    let (pid, tid) = pid_tid();
    // SAFETY: TRACKED values are plain data.
    let tracked: Option<Tracked> = unsafe { TRACKED.get(&pid) }.copied();
    let stop = matches!(tracked, Some(t) if t.stop_on_exec != 0);
    if tracked.is_none() && global().exec_all == 0 {
        return 0;
    }
    if stop {
        // SAFETY: signals the current task, which is the one exec'ing; it
        // stops before running the new image's first instruction.
        unsafe { bpf_send_signal(SIGSTOP) };
    }
    let Some(mut entry) = EVENTS.reserve::<Exec>(0) else {
        count_lost(lost::RINGBUF_FULL);
        return 0;
    };
    // SAFETY: no preconditions.
    let ktime_ns = unsafe { bpf_ktime_get_ns() };
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

#[tracepoint]
pub fn sched_exit(_ctx: TracePointContext) -> u32 {
    let (pid, tid) = pid_tid();
    // SAFETY: TRACKED values are plain data.
    let tracked = unsafe { TRACKED.get(&tid) }.is_some();
    if tracked {
        let _ = TRACKED.remove(&tid);
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
