//! The Go map-write uprobe. One program attached at every probed runtime
//! routine (after its stack-check prologue); the attach cookie says which
//! routine and carries the binary's g/map-header offsets.

use aya_ebpf::{
    EbpfContext as _, helpers::bpf_get_attach_cookie, helpers::bpf_ktime_get_ns, macros::uprobe,
    programs::ProbeContext,
};
use probe_common::{
    events::{EventHeader, KIND_NEW_TUPLE, KIND_OVERLAP, NewTuple, Overlap},
    lost,
    uprobe::{Cookie, MapKey, MapState, WriteKey},
};

use crate::maps::{EVENTS, MAP_STATE, WRITES, count_lost};
use crate::util::{BPF_NOEXIST, RB_NO_WAKEUP, pid_tid, read_user};

#[uprobe]
pub fn map_write(ctx: ProbeContext) -> u32 {
    let _ = try_map_write(&ctx);
    0
}

/// Go's internal ABI registers at the probe point (amd64).
struct GoCall {
    /// `*g` (R14).
    g: u64,
    /// `*maptype` (RAX).
    maptype: u64,
    /// Map header (RBX).
    map: u64,
    /// Stack pointer: `[rsp]` is the return address (no push has run yet).
    sp: u64,
}

#[inline(always)]
fn go_call(ctx: &ProbeContext) -> GoCall {
    // SAFETY: ctx.regs points at the pt_regs the kernel passed to this program.
    let regs = unsafe { &*ctx.regs };
    GoCall { g: regs.r14, maptype: regs.rax, map: regs.rbx, sp: regs.rsp }
}

fn try_map_write(ctx: &ProbeContext) -> Result<(), ()> {
    // SAFETY: helper valid for uprobe programs attached through a perf link.
    let cookie = Cookie::decode(unsafe { bpf_get_attach_cookie(ctx.as_ptr()) });
    let call = go_call(ctx);
    if call.map == 0 {
        // Writes to a nil map panic and deletes are no-ops: nothing to audit.
        return Ok(());
    }
    let (pid, tid) = pid_tid();
    let goid: u64 = read_user(call.g + cookie.goid_off as u64)?;
    let pc: u64 = read_user(call.sp)?;
    let key = WriteKey { pid, tid, goid, map: call.map, pc, routine: cookie.routine, _pad: [0; 7] };

    // Overlap: the header's write-in-progress state is set by a write that
    // has not finished yet (the Go runtime checks the same thing right after
    // this point and dies with "concurrent map writes").
    let mkey = MapKey { pid, _pad: 0, map: call.map };
    if let Ok(state) = read_user::<u8>(call.map + cookie.writing_off as u64)
        && state & cookie.writing_mask != 0
    {
        report_overlap(&call, &key, &mkey, &cookie);
    }
    record_last_writer(&mkey, goid, pc, tid);

    match WRITES.get_ptr_mut(&key) {
        // SAFETY: per-CPU value; `tid` is in the key, so no other task can
        // be updating this slot concurrently.
        Some(p) => unsafe { *p += 1 },
        None => {
            if WRITES.insert(&key, &1, BPF_NOEXIST).is_err() {
                count_lost(lost::WRITES_FULL);
            }
            report_new_tuple(&call, &key, &cookie);
        }
    }
    Ok(())
}

#[inline(always)]
fn record_last_writer(mkey: &MapKey, goid: u64, pc: u64, tid: u32) {
    match MAP_STATE.get_ptr_mut(mkey) {
        Some(p) => {
            // SAFETY: points into the map's value; racy stores only blur
            // which of two concurrent writers is named, never memory safety.
            unsafe {
                (*p).goid = goid;
                (*p).pc = pc;
                (*p).tid = tid;
            }
        }
        None => {
            let st = MapState { goid, pc, tid, _pad: 0 };
            if MAP_STATE.insert(mkey, &st, 0).is_err() {
                count_lost(lost::MAP_STATE_FULL);
            }
        }
    }
}

#[inline(always)]
fn header(kind: u32, key: &WriteKey) -> EventHeader {
    // SAFETY: no preconditions.
    let ktime_ns = unsafe { bpf_ktime_get_ns() };
    EventHeader { kind, pid: key.pid, tid: key.tid, _pad: 0, ktime_ns }
}

#[inline(always)]
fn gopc(call: &GoCall, cookie: &Cookie) -> u64 {
    read_user::<u64>(call.g + cookie.gopc_off as u64).unwrap_or(0)
}

#[inline(never)]
fn report_new_tuple(call: &GoCall, key: &WriteKey, cookie: &Cookie) {
    let Some(mut entry) = EVENTS.reserve::<NewTuple>(0) else {
        count_lost(lost::RINGBUF_FULL);
        return;
    };
    entry.write(NewTuple {
        hdr: header(KIND_NEW_TUPLE, key),
        key: *key,
        maptype: call.maptype,
        gopc: gopc(call, cookie),
    });
    entry.submit(RB_NO_WAKEUP);
}

#[inline(never)]
fn report_overlap(call: &GoCall, key: &WriteKey, mkey: &MapKey, cookie: &Cookie) {
    // SAFETY: the reference is only read before the program returns.
    let other = unsafe { MAP_STATE.get(mkey) }.copied();
    let Some(mut entry) = EVENTS.reserve::<Overlap>(0) else {
        count_lost(lost::RINGBUF_FULL);
        return;
    };
    entry.write(Overlap {
        hdr: header(KIND_OVERLAP, key),
        key: *key,
        maptype: call.maptype,
        gopc: gopc(call, cookie),
        other: other.unwrap_or_default(),
        other_known: other.is_some() as u32,
        _pad: 0,
    });
    entry.submit(RB_NO_WAKEUP);
}
