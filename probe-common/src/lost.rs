//! Indices of the per-CPU `LOST` array: everything the kernel side failed to
//! record. Userspace sums them over CPUs and shows them; nothing is lost
//! silently.

/// Ring-buffer reserve failed (buffer full): an event was dropped.
pub const RINGBUF_FULL: u32 = 0;
/// A write could not be counted because `WRITES` was full.
pub const WRITES_FULL: u32 = 1;
/// `MAP_STATE` was full: overlaps on that map cannot name the other writer.
pub const MAP_STATE_FULL: u32 = 2;
/// `bpf_probe_read_user` failed (goid, map header or return address).
pub const READ_FAILED: u32 = 3;
/// `BPF_WRITES` was full: a bpf(2) map write was not counted.
pub const BPF_WRITES_FULL: u32 = 4;
/// `TRACKED` was full: a descendant of the command is not followed.
pub const TRACKED_FULL: u32 = 5;
/// `EXEC_STOPPED` was full: a process stopped at exec is resumed only once
/// mapaudit reads its exec event (not by the guard if mapaudit dies first).
pub const EXEC_STOPPED_FULL: u32 = 6;
pub const COUNT: u32 = 7;

pub const NAMES: [&str; COUNT as usize] = [
    "ringbuf_full",
    "writes_map_full",
    "map_state_full",
    "read_failed",
    "bpf_writes_map_full",
    "tracked_map_full",
    "exec_stopped_map_full",
];
