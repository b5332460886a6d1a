//! The Go map-write uprobe. One program attached at every probed runtime
//! routine (after its stack-check prologue); the attach cookie says which
//! routine and carries the binary's g/map-header offsets.

use aya_log_ebpf::debug;
use aya_ebpf::{
    EbpfContext as _, helpers::bpf_get_attach_cookie, helpers::bpf_ktime_get_ns, macros::uprobe,
    programs::ProbeContext,
};
use probe_common::{
    events::{EventHeader, KIND_NEW_TUPLE, KIND_OVERLAP, NewTuple, OVERLAP_AT_ENTRY, OVERLAP_GO_FATAL, Overlap},
    lost,
    maps::{LAST_ENTRY_SLOTS, NEST_SLOTS},
    uprobe::{Cookie, LastEntry, MapKey, MapState, NEST_WRAPPER, NestEntry, WriteKey, Writer, routine, routine::Op},
};

use crate::maps::{EVENTS, LAST_ENTRY, MAP_STATE, NEST, WRITES, count_lost};
use crate::util::{BPF_NOEXIST, pid_tid, read_user, submit_flags};

#[uprobe]
pub fn map_write(ctx: ProbeContext) -> u32 {
    // SAFETY: helper valid for uprobe programs attached through a perf link.
    let cookie = Cookie::decode(unsafe { bpf_get_attach_cookie(ctx.as_ptr()) });
    let call = go_call(&ctx);
    let _ = if cookie.routine == routine::FATAL { try_go_fatal(&ctx, &call, &cookie) } else { try_map_write(&call, &cookie) };
    0
}

/// Go's internal ABI registers at the probe point (amd64).
struct GoCall {
    /// `*g` (R14).
    g: u64,
    /// First argument (RAX): `*maptype`; for `fatal`, the message pointer.
    rax: u64,
    /// Second argument (RBX): the map header; for `fatal`, the message length.
    rbx: u64,
    /// Stack pointer: `[rsp]` is the return address (no push has run yet).
    sp: u64,
}

#[inline(always)]
fn go_call(ctx: &ProbeContext) -> GoCall {
    // SAFETY: ctx.regs points at the pt_regs the kernel passed to this program.
    let regs = unsafe { &*ctx.regs };
    GoCall { g: regs.r14, rax: regs.rax, rbx: regs.rbx, sp: regs.rsp }
}

fn try_map_write(call: &GoCall, cookie: &Cookie) -> Result<(), ()> {
    let (maptype, map) = (call.rax, call.rbx);
    if map == 0 {
        // Writes to a nil map panic and deletes are no-ops: nothing to audit.
        return Ok(());
    }
    let (pid, tid) = pid_tid();
    let goid: u64 = read_user(call.g + cookie.goid_off as u64)?;
    if cookie.nest != 0 && nested(cookie.nest, tid, goid, call.sp) {
        return Ok(());
    }
    let pc: u64 = read_user(call.sp)?;
    let key = WriteKey { pid, tid, goid, map, pc, routine: cookie.routine, _pad: [0; 7] };
    let mkey = MapKey { pid, _pad: 0, map };

    // Only a map another goroutine writes can be accessed concurrently: a
    // write records itself and learns whether the map has had several
    // writers; a read (`--reads`) only looks.
    let (contended, other_entered) = if routine::op(cookie.routine) == Op::Read {
        // SAFETY: the reference is only read before the program returns.
        match unsafe { MAP_STATE.get(&mkey) } {
            Some(s) => (s.other_than(goid).is_some(), s.last.goid != goid),
            None => (false, false),
        }
    } else {
        record_writer(&mkey, Writer { goid, pc, tid, _pad: 0 })
    };
    if contended {
        // The header's write-in-progress state is set by a write that has
        // not finished yet (the Go runtime checks the same thing right after
        // this point and dies with "concurrent map writes", or "concurrent
        // map read and map write"). That write's entry was recorded as the
        // map's last: if the last to enter was this goroutine, no other one
        // can be inside, and the user-memory read (the dearest part of the
        // probe) is skipped. Entries racing this one are caught by Go's own
        // check, through the `fatal` probe.
        if other_entered
            && let Ok(state) = read_user::<u8>(map + cookie.writing_off as u64)
            && state & cookie.writing_mask != 0
        {
            report_overlap(&key, maptype, &mkey, gopc(call, cookie), OVERLAP_AT_ENTRY);
        }
        // Remember this entry for the `fatal` probe.
        if let Some(p) = LAST_ENTRY.get_ptr_mut(tid % LAST_ENTRY_SLOTS) {
            // SAFETY: this CPU's slot for this thread; the `fatal` probe runs
            // on the same CPU moments later (it checks the tid and goid).
            unsafe { *p = LastEntry { key, maptype } };
        }
    }

    match WRITES.get_ptr_mut(&key) {
        // SAFETY: per-CPU value; `tid` is in the key, so no other task can
        // be updating this slot concurrently.
        Some(p) => unsafe { *p += 1 },
        None => {
            if WRITES.insert(&key, &1, BPF_NOEXIST).is_err() {
                count_lost(lost::WRITES_FULL);
            }
            report_new_tuple(&key, maptype, gopc(call, cookie));
        }
    }
    Ok(())
}

/// Wrapper routines (`Cookie::nest`): a wrapper notes its entry; the
/// routine it calls skips an entry made from inside it (same thread and
/// goroutine, stack pointer exactly `nest` bytes lower), which is the same
/// map operation, already seen at the wrapper with the user's call site.
#[inline(always)]
fn nested(nest: u8, tid: u32, goid: u64, sp: u64) -> bool {
    let Some(slot) = NEST.get_ptr_mut(tid % NEST_SLOTS) else { return false };
    // SAFETY: a slot of a shared array; a racing thread with the same slot
    // can only make a check fail (the entry is then counted at the
    // wrapper's call site in userspace's view too: see `collector`).
    unsafe {
        if nest == NEST_WRAPPER {
            *slot = NestEntry { tid, _pad: 0, goid, sp };
            return false;
        }
        let s = *slot;
        if s.tid == tid && s.goid == goid && s.sp == sp + nest as u64 {
            (*slot).tid = 0;
            return true;
        }
    }
    false
}

/// `runtime.fatal(s string)`: when the message is a concurrent map access,
/// the Go runtime caught an overlap inside the write this thread entered
/// last; report it with both writers before the process dies.
fn try_go_fatal(ctx: &ProbeContext, call: &GoCall, cookie: &Cookie) -> Result<(), ()> {
    const MSG: &[u8; 15] = b"concurrent map ";
    // "concurrent map writes" and "concurrent map read and map write": the
    // thread is inside the access it entered last. (Iteration is not probed,
    // so "concurrent map iteration and map write" has no entry to name.)
    const WRITES_LEN: u64 = 21;
    const READ_LEN: u64 = 33;
    let (msg, len) = (call.rax, call.rbx);
    if len != WRITES_LEN && len != READ_LEN {
        return Ok(());
    }
    let head: [u8; 15] = read_user(msg)?;
    if &head != MSG {
        return Ok(());
    }
    let (_, tid) = pid_tid();
    debug!(ctx, "go fatal on tid {}: concurrent map access", tid);
    let Some(entry) = LAST_ENTRY.get(tid % LAST_ENTRY_SLOTS).copied() else { return Ok(()) };
    let goid: u64 = read_user(call.g + cookie.goid_off as u64)?;
    if entry.key.tid != tid || entry.key.goid != goid {
        debug!(ctx, "go fatal: tid {} last entered a write as goid {}, not {}", tid, entry.key.goid, goid);
        // Not inside a write to a shared map we saw (or the thread moved to
        // another CPU in between): nothing to name; the entry check may
        // still have caught the overlap.
        return Ok(());
    }
    if (routine::op(entry.key.routine) == Op::Read) != (len == READ_LEN) {
        // A read's fatal but the last entry was a write, or the reverse.
        return Ok(());
    }
    let mkey = MapKey { pid: entry.key.pid, _pad: 0, map: entry.key.map };
    report_overlap(&entry.key, entry.maptype, &mkey, gopc(call, cookie), OVERLAP_GO_FATAL);
    Ok(())
}

/// Records `me` as the map's last writer. Returns whether the map has had
/// more than one writing goroutine, and whether another goroutine entered
/// a write on it since `me`'s last.
#[inline(always)]
fn record_writer(mkey: &MapKey, me: Writer) -> (bool, bool) {
    match MAP_STATE.get_ptr_mut(mkey) {
        Some(p) => {
            // SAFETY: points into the map's value; racy stores only blur
            // which of two concurrent writers is named, never memory safety.
            unsafe {
                let other = (*p).last.goid != me.goid;
                if other {
                    (*p).prev = (*p).last;
                }
                (*p).last = me;
                ((*p).prev.pc != 0, other)
            }
        }
        None => {
            let st = MapState { last: me, prev: Writer::default() };
            if MAP_STATE.insert(mkey, &st, 0).is_err() {
                count_lost(lost::MAP_STATE_FULL);
            }
            (false, false)
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
fn report_new_tuple(key: &WriteKey, maptype: u64, gopc: u64) {
    let Some(mut entry) = EVENTS.reserve::<NewTuple>(0) else {
        count_lost(lost::RINGBUF_FULL);
        return;
    };
    entry.write(NewTuple { hdr: header(KIND_NEW_TUPLE, key), key: *key, maptype, gopc });
    entry.submit(submit_flags());
}

#[inline(never)]
fn report_overlap(key: &WriteKey, maptype: u64, mkey: &MapKey, gopc: u64, source: u32) {
    // SAFETY: the reference is only read before the program returns.
    let other = unsafe { MAP_STATE.get(mkey) }.and_then(|s| s.other_than(key.goid));
    let Some(mut entry) = EVENTS.reserve::<Overlap>(0) else {
        count_lost(lost::RINGBUF_FULL);
        return;
    };
    entry.write(Overlap {
        hdr: header(KIND_OVERLAP, key),
        key: *key,
        maptype,
        gopc,
        other: other.unwrap_or_default(),
        other_known: other.is_some() as u32,
        source,
    });
    entry.submit(submit_flags());
}
