//! Programs used only by `cargo xtask bench`: the cost floor (an empty
//! uprobe at the same points as `map_write`, an empty `sys_enter_bpf`
//! tracepoint) and a ring-buffer event pump.

use aya_ebpf::{macros::{tracepoint, uprobe}, programs::{ProbeContext, TracePointContext}};
use probe_common::{
    events::{BENCH_BURST, EventHeader, KIND_BENCH, NewTuple},
    lost,
};

use crate::maps::{EVENTS, count_lost, global};
use crate::util::{pid_tid, submit_flags};

#[uprobe]
pub fn map_write_floor(_ctx: ProbeContext) -> u32 {
    0
}

/// The bpf(2) tracepoint's cost floor: an empty program at `sys_enter_bpf`.
#[tracepoint]
pub fn sys_enter_bpf_floor(_ctx: TracePointContext) -> u32 {
    0
}

/// Attached to `syscalls/sys_enter_getppid`: each call by the bench pid
/// emits `BENCH_BURST` events, as fast as the ring buffer takes them.
#[tracepoint]
pub fn bench_pump(_ctx: TracePointContext) -> u32 {
    let (pid, tid) = pid_tid();
    if pid == 0 || pid != global().bench_pid {
        return 0;
    }
    for i in 0..BENCH_BURST {
        let Some(mut e) = EVENTS.reserve::<NewTuple>(0) else {
            count_lost(lost::RINGBUF_FULL);
            continue;
        };
        e.write(NewTuple {
            hdr: EventHeader { kind: KIND_BENCH, pid, tid, _pad: i, ktime_ns: 0 },
            ..Default::default()
        });
        e.submit(submit_flags());
    }
    0
}
