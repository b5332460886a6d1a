//! The map-write uprobe: routine ids, the attach cookie, and the counter key.

/// Go runtime routines probed. The id travels in the attach cookie and in
/// `WriteKey::routine`, so userspace can tell `m[k]=v` from `delete`/`clear`.
pub mod routine {
    pub const MAPASSIGN: u8 = 0;
    pub const MAPASSIGN_FAST32: u8 = 1;
    pub const MAPASSIGN_FAST32PTR: u8 = 2;
    pub const MAPASSIGN_FAST64: u8 = 3;
    pub const MAPASSIGN_FAST64PTR: u8 = 4;
    pub const MAPASSIGN_FASTSTR: u8 = 5;
    pub const MAPDELETE: u8 = 6;
    pub const MAPDELETE_FAST32: u8 = 7;
    pub const MAPDELETE_FAST64: u8 = 8;
    pub const MAPDELETE_FASTSTR: u8 = 9;
    pub const MAPCLEAR: u8 = 10;
    /// Not a map write: `runtime.fatal`, through which the Go runtime dies
    /// with "concurrent map writes". Probing it catches the overlaps the
    /// entry check races with, and names the writer that detected it.
    pub const FATAL: u8 = 11;
    /// Map reads, probed only with `--reads` (far more frequent than
    /// writes). `v := m[k]` calls `mapaccess1*`, `v, ok := m[k]`
    /// `mapaccess2*`; `*_fat` is for large values.
    pub const MAPACCESS1: u8 = 12;
    pub const MAPACCESS2: u8 = 13;
    pub const MAPACCESS1_FAST32: u8 = 14;
    pub const MAPACCESS2_FAST32: u8 = 15;
    pub const MAPACCESS1_FAST64: u8 = 16;
    pub const MAPACCESS2_FAST64: u8 = 17;
    pub const MAPACCESS1_FASTSTR: u8 = 18;
    pub const MAPACCESS2_FASTSTR: u8 = 19;
    pub const MAPACCESS1_FAT: u8 = 20;
    pub const MAPACCESS2_FAT: u8 = 21;
    /// Not a map operation: `runtime.gcStart`, once per GC cycle. A heap
    /// map can only be freed (and its address reused) after a cycle
    /// starts: see `MapState::gc_at_reseed`.
    pub const GC_START: u8 = 22;
    /// Map iteration start (`for k, v := range m`): `runtime.mapiterinit`
    /// before Go 1.24, `runtime.mapIterStart` (swiss maps) from 1.24. Always
    /// probed (one hit per loop, not per element): Go dies with
    /// "concurrent map iteration and map write" from inside the loop, and
    /// the iteration's entry is what names the iterating goroutine and site.
    /// Counted only with `--reads`.
    pub const MAPITERINIT: u8 = 23;
    pub const MAPITERSTART: u8 = 24;
    pub const COUNT: usize = 25;
    const _: () = assert!(COUNT < 128, "a routine id leaves the top bit of its cookie byte free");

    /// Symbol names, indexed by routine id.
    pub const SYMBOLS: [&str; COUNT] = [
        "runtime.mapassign",
        "runtime.mapassign_fast32",
        "runtime.mapassign_fast32ptr",
        "runtime.mapassign_fast64",
        "runtime.mapassign_fast64ptr",
        "runtime.mapassign_faststr",
        "runtime.mapdelete",
        "runtime.mapdelete_fast32",
        "runtime.mapdelete_fast64",
        "runtime.mapdelete_faststr",
        "runtime.mapclear",
        "runtime.fatal",
        "runtime.mapaccess1",
        "runtime.mapaccess2",
        "runtime.mapaccess1_fast32",
        "runtime.mapaccess2_fast32",
        "runtime.mapaccess1_fast64",
        "runtime.mapaccess2_fast64",
        "runtime.mapaccess1_faststr",
        "runtime.mapaccess2_faststr",
        "runtime.mapaccess1_fat",
        "runtime.mapaccess2_fat",
        "runtime.gcStart",
        "runtime.mapiterinit",
        "runtime.mapIterStart",
    ];

    /// What a routine does to the map.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Op {
        Write,
        Delete,
        Clear,
        /// A lookup (`--reads`): counted, never a mutation.
        Read,
        /// An iteration start: never a mutation; counted with `--reads`.
        Iter,
        /// Not a map operation (`FATAL`).
        None,
    }

    pub const fn op(id: u8) -> Op {
        match id {
            MAPASSIGN..=MAPASSIGN_FASTSTR => Op::Write,
            MAPDELETE..=MAPDELETE_FASTSTR => Op::Delete,
            MAPCLEAR => Op::Clear,
            MAPACCESS1..=MAPACCESS2_FAT => Op::Read,
            MAPITERINIT | MAPITERSTART => Op::Iter,
            _ => Op::None,
        }
    }

    /// Whether the routine changes the map (a write, delete or clear).
    pub const fn mutates(op: Op) -> bool {
        matches!(op, Op::Write | Op::Delete | Op::Clear)
    }
}

/// Everything the uprobe needs to know about the binary it fires in, packed
/// into the 64-bit attach cookie so the hot path needs no config lookup.
/// Offsets are per binary (Go version), and an attachment is per binary.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cookie {
    /// `routine` id (< 128: the top bit of its byte holds `at_stack_check`).
    pub routine: u8,
    /// The probe sits on the conditional branch of the routine's stack
    /// check (arm64: `b.ls` to `morestack`, which the kernel simulates,
    /// where any other instruction there would be single-stepped out of
    /// line; see `probe-user`'s `gobin::prologue_arm64`): the hit counts
    /// only when the branch falls through into the body, since a taken one
    /// grows the stack and re-runs the routine from its entry, through the
    /// probe again.
    pub at_stack_check: bool,
    /// Offset of `goid` in `runtime.g`.
    pub goid_off: u16,
    /// Offset of `gopc` in `runtime.g`.
    pub gopc_off: u16,
    /// Offset of the write-in-progress byte in the map header
    /// (`maps.Map.writing`, or `hmap.flags`).
    pub writing_off: u8,
    /// Mask applied to that byte (0xff for `writing`, `hashWriting`=4 for hmap).
    pub writing_mask: u8,
    /// Nested calls between probed routines (Go 1.27's `mapaccess1_*` are
    /// wrappers that call `mapaccess2_*`): `NEST_WRAPPER` for a wrapper,
    /// which marks its entry; for the routine it calls, the stack-pointer
    /// distance from the wrapper's probe to this one, so an entry from
    /// inside the wrapper is recognised and skipped (one read, counted
    /// once at the user's call site). 0: neither.
    pub nest: u8,
}

/// `Cookie::nest` of a wrapper routine.
pub const NEST_WRAPPER: u8 = 0xff;

/// A wrapper's entry, per thread slot (`maps::NEST_SLOTS`), so the nested
/// routine's probe can tell it was called from inside it.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NestEntry {
    pub tid: u32,
    pub _pad: u32,
    pub goid: u64,
    /// Stack pointer at the wrapper's probe.
    pub sp: u64,
}

impl Cookie {
    pub const fn encode(self) -> u64 {
        ((self.routine & 0x7f) as u64)
            | ((self.at_stack_check as u64) << 7)
            | ((self.goid_off as u64) << 8)
            | ((self.gopc_off as u64) << 24)
            | ((self.writing_off as u64) << 40)
            | ((self.writing_mask as u64) << 48)
            | ((self.nest as u64) << 56)
    }

    pub const fn decode(c: u64) -> Self {
        Self {
            routine: c as u8 & 0x7f,
            at_stack_check: c & 0x80 != 0,
            goid_off: (c >> 8) as u16,
            gopc_off: (c >> 24) as u16,
            writing_off: (c >> 40) as u8,
            writing_mask: (c >> 48) as u8,
            nest: (c >> 56) as u8,
        }
    }

    /// Offset of the map header's hash seed, which the runtime sets at
    /// creation (stack-allocated maps too) and re-seeds only on `clear` and
    /// on a delete that empties the map: (pid, address, seed) tells a new
    /// map at a reused address from the old one. `hmap.hash0` (uint32 at
    /// 12) before Go 1.24, whose write state is `hmap.flags` at 8;
    /// `maps.Map.seed` (uintptr at 8; its low half is read) from 1.24.
    pub const fn seed_off(&self) -> u64 {
        if self.writing_off == HMAP_FLAGS_OFF { 12 } else { 8 }
    }
}

/// Offset of `hmap.flags` (pre-swiss maps): see `Cookie::seed_off`.
pub const HMAP_FLAGS_OFF: u8 = 8;
/// Offset of the element count in every map header (`hmap.count`,
/// `maps.Map.used`): a delete that finds at most one element may empty
/// the map, and an emptied map is re-seeded.
pub const COUNT_OFF: u64 = 0;

/// Key of the `WRITES` counter: one entry per distinct
/// (process, thread, goroutine, map, call site, routine). Userspace folds it
/// into per-goroutine, per-thread, per-map, per-writer and per-site totals;
/// one in-place increment per write is the cheapest exact scheme.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct WriteKey {
    pub pid: u32,
    pub tid: u32,
    pub goid: u64,
    /// The map header pointer (`*hmap` / `*maps.Map`).
    pub map: u64,
    /// Return address of the call into the runtime: the write site.
    pub pc: u64,
    pub routine: u8,
    pub _pad: [u8; 3],
    /// The map instance (`MapState::inst`): a map freed and another made at
    /// the same address are two instances, never one map.
    pub inst: u32,
}
const _: () = assert!(core::mem::size_of::<WriteKey>() == 40);

/// Value of the `WRITES` counters. Besides the count, what naming a new key
/// needs — read once, when the key is inserted, instead of sending an event
/// per new key (under churn almost every key is new).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WriteValue {
    pub count: u64,
    /// `*maptype` (first argument); 0 on CPUs that did not insert the key.
    pub maptype: u64,
    /// `g.gopc`: where the goroutine was created; 0 likewise.
    pub gopc: u64,
}
const _: () = assert!(core::mem::size_of::<WriteValue>() == 24);

/// Key of `MAP_STATE`.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MapKey {
    pub pid: u32,
    pub _pad: u32,
    pub map: u64,
}
const _: () = assert!(core::mem::size_of::<MapKey>() == 16);

/// A writer of a map: goroutine, thread, call site.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Writer {
    pub goid: u64,
    pub pc: u64,
    pub tid: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<Writer>() == 24);

/// The last writer of a map and the last *other* goroutine that wrote it
/// before, so an overlapping write can name the other side even when the
/// detecting goroutine was itself the last to enter.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MapState {
    pub last: Writer,
    pub prev: Writer,
    /// This instance's id (`new_instance` in the probe): unique per CPU
    /// sequence and CPU, never 0.
    pub inst: u32,
    /// The header's seed when last read (low 32 bits).
    pub seed: u32,
    /// The goroutine whose clear, or delete of what may have been the last
    /// element, may have re-seeded the map (0: none since the seed was
    /// read). Its next write re-reads the seed as this instance's.
    pub reseeder: u64,
    /// The process's GC cycles (`runtime.gcStart` hits) when `reseeder` was
    /// set. Another goroutine finding a new seed then has two stories to
    /// tell apart: the map re-seeded itself when emptied (a set of live
    /// connections), or it was freed and another made at its address (a
    /// context's children, a request's header). A heap object is freed
    /// only by a GC cycle that starts after it was last used: no cycle
    /// since, no new map. (Stack maps are told apart by the stack.)
    pub gc_at_reseed: u32,
    pub _pad: u32,
    /// `*maptype` of the instance: a write of another type at the address
    /// is another map, whoever makes it (free to check: it is an argument).
    pub maptype: u64,
}
const _: () = assert!(core::mem::size_of::<MapState>() == 80);

impl MapState {
    /// The writer to blame for an overlap detected by goroutine `goid`.
    pub fn other_than(&self, goid: u64) -> Option<Writer> {
        if self.last.goid != goid && self.last.pc != 0 {
            Some(self.last)
        } else if self.prev.goid != goid && self.prev.pc != 0 {
            Some(self.prev)
        } else {
            None
        }
    }
}

/// The write (or read) a thread entered last, kept (per tid) only for maps
/// written by more than one goroutine (a read: by another goroutine): when
/// the Go runtime calls `fatal` from inside that access, it tells which map.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LastEntry {
    pub key: WriteKey,
    pub maptype: u64,
    /// To 64 bytes: one cache line per slot, so that threads on different
    /// CPUs never share the line they write.
    pub _pad: [u64; 2],
}

const _: () = assert!(core::mem::size_of::<LastEntry>() == 64, "one cache line per LAST_ENTRY slot");

crate::user_pod!(WriteKey, WriteValue, MapKey, Writer, MapState, LastEntry, NestEntry);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trips_every_field() {
        let c = Cookie {
            routine: 19,
            at_stack_check: false,
            goid_off: 0x98,
            gopc_off: 0x128,
            writing_off: 34,
            writing_mask: 0xff,
            nest: 48,
        };
        assert_eq!(Cookie::decode(c.encode()), c);
        let w = Cookie { nest: NEST_WRAPPER, routine: routine::MAPACCESS1_FASTSTR, ..c };
        assert_eq!(Cookie::decode(w.encode()), w);
        let b = Cookie { at_stack_check: true, routine: (routine::COUNT - 1) as u8, ..w };
        assert_eq!(Cookie::decode(b.encode()), b);
        assert_eq!(Cookie::decode(b.encode()).routine, b.routine);
    }
}
