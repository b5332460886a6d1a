//! `syscalls/sys_enter_bpf`: who writes which kernel BPF map from userspace.
//! Counted per (pid, tid, map fd, command) in place; userspace resolves the
//! fd to the map's id and name.

use aya_ebpf::{helpers::bpf_get_current_comm, macros::tracepoint, programs::TracePointContext};
use probe_common::{
    bpfmap::{
        ATTR_BATCH_COUNT, ATTR_BATCH_MAP_FD, ATTR_ELEM_MAP_FD, BpfWriteKey, BpfWriteValue, is_batch,
        is_write,
    },
    lost,
};

use crate::maps::{BPF_WRITES, TRACKED, count_lost, global};
use crate::util::{BPF_NOEXIST, pid_tid, read_user};

#[tracepoint]
pub fn sys_enter_bpf(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter_bpf(&ctx);
    0
}

fn try_sys_enter_bpf(ctx: &TracePointContext) -> Result<(), ()> {
    let g = global();
    // SAFETY: offsets of the syscall tracepoint record, from its format file.
    let cmd = unsafe { ctx.read_at::<u64>(g.bpf_cmd_off as usize) }.map_err(|_| ())? as u32;
    if !is_write(cmd) {
        return Ok(());
    }
    let (pid, tid) = pid_tid();
    if g.bpf_maps == 0 || pid == g.self_pid {
        return Ok(());
    }
    // SAFETY: TRACKED values are plain data.
    if g.bpf_tracked_only != 0 && unsafe { TRACKED.get(&pid) }.is_none() {
        return Ok(());
    }
    // SAFETY: as above.
    let uattr = unsafe { ctx.read_at::<u64>(g.bpf_uattr_off as usize) }.map_err(|_| ())?;
    let (fd, elems) = if is_batch(cmd) {
        let count: u32 = read_user(uattr + ATTR_BATCH_COUNT as u64)?;
        let fd: u32 = read_user(uattr + ATTR_BATCH_MAP_FD as u64)?;
        (fd, count as u64)
    } else {
        (read_user::<u32>(uattr + ATTR_ELEM_MAP_FD as u64)?, 1)
    };
    let key = BpfWriteKey { pid, tid, fd, cmd };
    match BPF_WRITES.get_ptr_mut(&key) {
        Some(p) => {
            // SAFETY: per-CPU value of a key that includes the tid.
            unsafe {
                (*p).calls += 1;
                (*p).elems += elems;
            }
        }
        None => {
            let v = BpfWriteValue { calls: 1, elems, comm: bpf_get_current_comm().unwrap_or_default() };
            if BPF_WRITES.insert(&key, &v, BPF_NOEXIST).is_err() {
                count_lost(lost::BPF_WRITES_FULL);
            }
        }
    }
    Ok(())
}
