//! The Go map-write uprobe. One program attached at every probed runtime
//! routine (after its stack-check prologue); the attach cookie says which
//! routine and carries the binary's g/map-header offsets.

use aya_log_ebpf::debug;
use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_attach_cookie, bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::uprobe,
    programs::ProbeContext,
};
use probe_common::{
    events::{EventHeader, KIND_OVERLAP, OVERLAP_AT_ENTRY, OVERLAP_GO_FATAL, Overlap},
    lost,
    maps::{LAST_ENTRY_SLOTS, NEST_SLOTS},
    uprobe::{
        COUNT_OFF, Cookie, LastEntry, MapKey, MapState, NEST_WRAPPER, NestEntry, WriteKey, WriteValue,
        Writer, routine, routine::Op,
    },
};

use crate::arch::{GoCall, go_call};
use crate::maps::{EVENTS, GC_CYCLES, GEN, GLOBAL, INSERTS, INST_SEQ, TRACKED, LAST_ENTRY, MAP_STATE, NEST, WRITES0, WRITES1, count_lost};
use crate::util::{BPF_NOEXIST, pid_tid, read_user, submit_flags};

#[uprobe]
pub fn map_write(ctx: ProbeContext) -> u32 {
    // SAFETY: helper valid for uprobe programs attached through a perf link.
    let cookie = Cookie::decode(unsafe { bpf_get_attach_cookie(ctx.as_ptr()) });
    let call = go_call(&ctx);
    if !call.enters_body(cookie.at_stack_check) {
        // The stack grows first; the routine then re-runs from its entry
        // and comes through here again.
        return 0;
    }
    let _ = match cookie.routine {
        routine::FATAL => try_go_fatal(&ctx, &call, &cookie),
        routine::GC_START => {
            gc_started();
            Ok(())
        }
        _ => try_map_write(&call, &cookie),
    };
    0
}

fn try_map_write(call: &GoCall, cookie: &Cookie) -> Result<(), ()> {
    let (maptype, map) = (call.arg0, call.arg1);
    if map == 0 {
        // Writes to a nil map panic and deletes are no-ops: nothing to audit.
        return Ok(());
    }
    let (pid, tid) = pid_tid();
    if let Some(g) = GLOBAL.get(0)
        && g.maps_tracked_only != 0
        // SAFETY: plain data, only tested for presence.
        && unsafe { TRACKED.get(&pid) }.is_none()
    {
        // Another process running the same executable as the command's.
        return Ok(());
    }
    let goid: u64 = read_user(call.g + cookie.goid_off as u64)?;
    if cookie.nest != 0 && nested(cookie.nest, tid, goid, call.sp) {
        return Ok(());
    }
    let pc = call.return_address()?;
    let mkey = MapKey { pid, _pad: 0, map };
    let op = routine::op(cookie.routine);

    // Only a map another goroutine writes can be accessed concurrently: a
    // write records itself and learns whether the map has had several
    // writers; a read (`--reads`) only looks.
    let me = Writer { goid, pc, tid, _pad: 0 };
    let counted = op != Op::Iter || GLOBAL.get(0).is_some_and(|g| g.count_iterations != 0);
    let Seen { inst, contended, other_entered } = note_access(&mkey, me, op, cookie, call.g, maptype);
    let key = WriteKey { pid, tid, goid, map, pc, routine: cookie.routine, _pad: [0; 3], inst };
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
    }
    // Remember every entry for the `fatal` probe, not only those that looked
    // contended: the racing write of a crash can enter while the map's state
    // still shows one writer (its rival's entry not yet recorded), and Go's
    // own check then names a write that was never remembered (seen about 1
    // crash in 6 under load). One cache-line store.
    if let Some(p) = LAST_ENTRY.get_ptr_mut(tid % LAST_ENTRY_SLOTS) {
        // SAFETY: this thread's slot (shared only with colliding tids; the
        // `fatal` probe checks the tid and goid it reads back).
        unsafe { *p = LastEntry { key, maptype, _pad: [0; 2] } };
    }
    if counted {
        count(&key, maptype, call, cookie);
    }
    Ok(())
}

/// Bumps the key's counter in the table of the current generation; a new
/// key carries the map type and the goroutine's creation PC, read once.
#[inline(always)]
fn count(key: &WriteKey, maptype: u64, call: &GoCall, cookie: &Cookie) {
    let generation = GEN.get(0).map_or(0, |&g| g & 1);
    let table = if generation == 1 { &WRITES1 } else { &WRITES0 };
    match table.get_ptr_mut(key) {
        // SAFETY: per-CPU value; `tid` is in the key, so no other task can
        // be updating this slot concurrently.
        Some(p) => unsafe { (*p).count += 1 },
        None => {
            let v = WriteValue { count: 1, maptype, gopc: gopc(call, cookie) };
            // No other CPU can insert this key meanwhile (its thread is
            // here): a failure means the table is full.
            if table.insert(key, &v, BPF_NOEXIST).is_err() {
                count_lost(lost::WRITES_FULL);
            } else if let Some(n) = INSERTS.get_ptr_mut(generation) {
                // SAFETY: this CPU's slot; programs do not migrate.
                unsafe { *n += 1 };
            }
        }
    }
}

/// What `note_access` learned about the map.
struct Seen {
    inst: u32,
    /// The map has had more than one writing goroutine (this instance).
    contended: bool,
    /// Another goroutine entered a write since this one's last.
    other_entered: bool,
}

/// A new map-instance id: this CPU's sequence number and the CPU, never 0.
#[inline(always)]
fn new_instance() -> u32 {
    // SAFETY: no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(p) = INST_SEQ.get_ptr_mut(0) else { return 1 };
    // SAFETY: this CPU's slot; programs do not migrate while running.
    let n = unsafe {
        *p = (*p).wrapping_add(1);
        *p
    };
    let id = (n << 8) | (cpu & 0xff);
    if id == 0 { 1 << 8 } else { id }
}

/// Records the access in the map's state: the last writers (writes only)
/// and which instance of the map this is.
///
/// A map's identity is (process, address, instance). A map of another type
/// (an argument, free to compare) is always a new instance. Beyond that,
/// identity is looked at only when the writing goroutine changes, so a map
/// one goroutine writes pays nothing (and a goroutine that makes map after
/// map of one type at one address makes one instance). Then:
/// - a map header on the writer's own stack is that goroutine's alone (Go
///   never shares a stack object with another goroutine): a new writer
///   means the address holds a new map, whose predecessor died with its
///   frame;
/// - a heap map keeps its seed for life, except that a clear or an
///   emptying delete re-seeds it: a new seed means a new map, unless such
///   an operation came first and no GC cycle has started since (a heap
///   object is only freed by a cycle that starts after its last use).
/// A new instance starts with no writers, so a freed map's writers are
/// never blamed on its successor. Reads change the instance only by type (a
/// read-mostly map would pay a read per lookup).
#[inline(always)]
fn note_access(mkey: &MapKey, me: Writer, op: Op, cookie: &Cookie, g: u64, maptype: u64) -> Seen {
    let write = routine::mutates(op);
    let seed_at = mkey.map + cookie.seed_off();
    let Some(p) = MAP_STATE.get_ptr_mut(mkey) else {
        let seed = read_user::<u32>(seed_at).unwrap_or(0);
        let inst = new_instance();
        let last = if write { me } else { Writer::default() };
        let mut st = MapState { last, prev: Writer::default(), inst, seed, maptype, ..MapState::default() };
        note_reseed(&mut st, mkey, op, me.goid);
        if MAP_STATE.insert(mkey, &st, 0).is_err() {
            // Instance 0: every such write would otherwise start a new one.
            count_lost(lost::MAP_STATE_FULL);
            return Seen { inst: 0, contended: false, other_entered: false };
        }
        return Seen { inst, contended: false, other_entered: false };
    };
    // SAFETY: points into the map's value; racy stores only blur which of
    // two concurrent writers is named, never memory safety.
    let s = unsafe { &mut *p };
    if s.maptype != maptype {
        // Another type at this address: another map.
        s.maptype = maptype;
        s.inst = new_instance();
        s.last = Writer::default();
        s.prev = Writer::default();
        s.reseeder = 0;
        if let Ok(seed) = read_user::<u32>(seed_at) {
            s.seed = seed;
        }
    }
    if !write {
        return Seen { inst: s.inst, contended: s.other_than(me.goid).is_some(), other_entered: s.last.goid != me.goid };
    }
    let other = s.last.goid != me.goid;
    if s.reseeder == me.goid {
        // Re-seeded in place by this goroutine (or not): still this instance.
        if let Ok(seed) = read_user::<u32>(seed_at) {
            s.seed = seed;
        }
        s.reseeder = 0;
    } else if other && s.last.pc != 0 && is_new_map(s, mkey, g, seed_at) {
        s.inst = new_instance();
        s.last = Writer::default();
        s.prev = Writer::default();
        s.reseeder = 0;
    }
    let other = s.last.goid != me.goid;
    if other {
        s.prev = s.last;
    }
    s.last = me;
    note_reseed(s, mkey, op, me.goid);
    Seen { inst: s.inst, contended: s.prev.pc != 0, other_entered: other }
}

/// Another goroutine than the last writer writes the map at `mkey`: is it a
/// new map at that address (see `note_access`)? Updates the seed.
#[inline(always)]
fn is_new_map(s: &mut MapState, mkey: &MapKey, g: u64, seed_at: u64) -> bool {
    // `g.stack` {lo, hi} is the first field of `runtime.g` in every version.
    if let Ok(stack) = read_user::<[u64; 2]>(g)
        && mkey.map >= stack[0]
        && mkey.map < stack[1]
    {
        return true;
    }
    let Ok(seed) = read_user::<u32>(seed_at) else { return false };
    if seed == s.seed {
        return false;
    }
    s.seed = seed;
    !(s.reseeder != 0 && gc_cycles(mkey.pid) == s.gc_at_reseed)
}

/// Marks `s` as possibly re-seeded by `goid` when `op` may do that.
#[inline(always)]
fn note_reseed(s: &mut MapState, mkey: &MapKey, op: Op, goid: u64) {
    if may_reseed(mkey.map, op) {
        s.reseeder = goid;
        s.gc_at_reseed = gc_cycles(mkey.pid);
    }
}

#[inline(always)]
fn gc_cycles(pid: u32) -> u32 {
    // SAFETY: plain data, copied out.
    unsafe { GC_CYCLES.get(&pid) }.copied().unwrap_or(0)
}

/// `runtime.gcStart`: one more GC cycle in this process.
#[inline(always)]
fn gc_started() {
    let (pid, _) = pid_tid();
    match GC_CYCLES.get_ptr_mut(&pid) {
        // SAFETY: a racing start elsewhere in the process can only lose a
        // count while another is counted: the number still moves.
        Some(p) => unsafe { *p = (*p).wrapping_add(1) },
        None => {
            let _ = GC_CYCLES.insert(&pid, &1, 0);
        }
    }
}

/// Whether `op` may re-seed the map: a clear always, a delete when it may
/// remove the last element.
#[inline(always)]
fn may_reseed(map: u64, op: Op) -> bool {
    match op {
        Op::Clear => true,
        Op::Delete => !matches!(read_user::<u64>(map + COUNT_OFF), Ok(n) if n > 1),
        _ => false,
    }
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
    // thread is inside the access it entered last. "concurrent map
    // iteration and map write" comes from a loop step (`mapiternext`), after
    // the loop's start: the thread's last entry is that start as long as the
    // loop body made no other map call on this thread.
    const WRITES_LEN: u64 = 21;
    const READ_LEN: u64 = 33;
    const ITER_LEN: u64 = 38;
    let (msg, len) = (call.arg0, call.arg1);
    let expected = match len {
        WRITES_LEN => Op::Write,
        READ_LEN => Op::Read,
        ITER_LEN => Op::Iter,
        _ => return Ok(()),
    };
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
    let entered = match routine::op(entry.key.routine) {
        Op::Delete | Op::Clear => Op::Write,
        op => op,
    };
    if entered != expected {
        // A read's fatal but the last entry was a write, or the like.
        return Ok(());
    }
    let mkey = MapKey { pid: entry.key.pid, _pad: 0, map: entry.key.map };
    report_overlap(&entry.key, entry.maptype, &mkey, gopc(call, cookie), OVERLAP_GO_FATAL);
    Ok(())
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
