//! Every map of the object, in one place. Names come from
//! `probe_common::maps`; userspace resizes them before load.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use probe_common::{
    bpfmap::{BpfWriteKey, BpfWriteValue, Calibration, HotKey},
    config::{Global, Tracked},
    lost,
    maps::{self as names, InodeKey},
    uprobe::{LastEntry, MapKey, MapState, NestEntry, WriteKey, WriteValue},
};

// The two tables of `names::WRITES` (the names there must match).
#[map(name = "WRITES0")]
pub static WRITES0: PerCpuHashMap<WriteKey, WriteValue> =
    PerCpuHashMap::with_max_entries(names::WRITES_DEFAULT_ENTRIES, 0);

#[map(name = "WRITES1")]
pub static WRITES1: PerCpuHashMap<WriteKey, WriteValue> =
    PerCpuHashMap::with_max_entries(names::WRITES_DEFAULT_ENTRIES, 0);

#[map(name = "GC_CYCLES")]
pub static GC_CYCLES: LruHashMap<u32, u32> = LruHashMap::with_max_entries(names::GC_CYCLES_ENTRIES, 0);

#[map(name = "GEN")]
pub static GEN: Array<u32> = Array::with_max_entries(1, 0);

#[map(name = "INSERTS")]
pub static INSERTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

#[map(name = "INST_SEQ")]
pub static INST_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "MAP_STATE")]
pub static MAP_STATE: LruHashMap<MapKey, MapState> =
    LruHashMap::with_max_entries(names::MAP_STATE_DEFAULT_ENTRIES, 0);

#[map(name = "LAST_ENTRY")]
pub static LAST_ENTRY: Array<LastEntry> = Array::with_max_entries(names::LAST_ENTRY_SLOTS, 0);

#[map(name = "NEST")]
pub static NEST: Array<NestEntry> = Array::with_max_entries(names::NEST_SLOTS, 0);

#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(names::EVENTS_DEFAULT_BYTES, 0);

#[map(name = "LOST")]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(lost::COUNT, 0);

#[map(name = "TRACKED")]
pub static TRACKED: HashMap<u32, Tracked> =
    HashMap::with_max_entries(names::TRACKED_DEFAULT_ENTRIES, 0);

#[map(name = "EXEC_STOPPED")]
pub static EXEC_STOPPED: HashMap<u32, u64> = HashMap::with_max_entries(names::EXEC_STOPPED_ENTRIES, 0);

#[map(name = "ATTACHED_INODES")]
pub static ATTACHED_INODES: HashMap<InodeKey, u32> = HashMap::with_max_entries(names::ATTACHED_INODES_ENTRIES, 0);

#[map(name = "GLOBAL")]
pub static GLOBAL: Array<Global> = Array::with_max_entries(1, 0);

#[map(name = "BPF_WRITES")]
pub static BPF_WRITES: PerCpuHashMap<BpfWriteKey, BpfWriteValue> =
    PerCpuHashMap::with_max_entries(names::BPF_WRITES_DEFAULT_ENTRIES, 0);

#[map(name = "CALIB")]
pub static CALIB: Array<Calibration> = Array::with_max_entries(1, 0);

#[map(name = "HOT_KEYS")]
pub static HOT_KEYS: LruPerCpuHashMap<HotKey, u64> = LruPerCpuHashMap::with_max_entries(names::HOT_KEYS_ENTRIES, 0);

/// Counts one thing the kernel side could not record (`probe_common::lost`).
#[inline(always)]
pub fn count_lost(idx: u32) {
    if let Some(p) = LOST.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, this program runs with migration disabled.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
pub fn global() -> Global {
    match GLOBAL.get(0) {
        Some(g) => *g,
        None => Global::default(),
    }
}
