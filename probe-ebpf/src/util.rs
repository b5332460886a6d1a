//! Small helpers shared by the hook modules.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user};
use probe_common::lost;

use crate::maps::count_lost;

/// Ring-buffer submit flag: never wake the consumer per event; userspace
/// drains on its tick (a wake-up costs more than the probe itself).
pub const RB_NO_WAKEUP: u64 = 1;

/// Submit flags for a rare event: no wake-up, unless the buffer is more than
/// half full — then wake the consumer so a burst never overflows a tick.
#[inline(always)]
pub fn submit_flags() -> u64 {
    const BPF_RB_AVAIL_DATA: u64 = 0;
    const BPF_RB_RING_SIZE: u64 = 1;
    let avail = crate::maps::EVENTS.query(BPF_RB_AVAIL_DATA);
    let size = crate::maps::EVENTS.query(BPF_RB_RING_SIZE);
    if avail > size / 2 { RB_FORCE_WAKEUP } else { RB_NO_WAKEUP }
}
/// For the few events userspace must act on at once (a stopped exec).
pub const RB_FORCE_WAKEUP: u64 = 2;

/// BPF_NOEXIST: insert only; never replace an entry a concurrent CPU made.
pub const BPF_NOEXIST: u64 = 1;

#[inline(always)]
pub fn pid_tid() -> (u32, u32) {
    let v = bpf_get_current_pid_tgid();
    ((v >> 32) as u32, v as u32)
}

/// Reads user memory; a failure is counted, never silent.
#[inline(always)]
pub fn read_user<T>(addr: u64) -> Result<T, ()> {
    // SAFETY: bpf_probe_read_user validates the address; any value is Copy data.
    match unsafe { bpf_probe_read_user(addr as *const T) } {
        Ok(v) => Ok(v),
        Err(_) => {
            count_lost(lost::READ_FAILED);
            Err(())
        }
    }
}
