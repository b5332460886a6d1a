//! `syscalls/sys_enter_bpf`: who writes (and, with `--reads`, looks up)
//! which kernel BPF map from userspace. Counted per (pid, tid, fd, command,
//! map id) in place. The map behind the fd is named here, at the call,
//! by following `current->files->fdt->fd[fd]->private_data` with offsets
//! from the kernel's BTF: a writer that lives a few milliseconds (bpftool
//! in a script) has closed its fd long before userspace could look.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_task, bpf_probe_read_kernel},
    macros::tracepoint,
    programs::TracePointContext,
};
use probe_common::{
    bpfmap::{
        ATTR_BATCH_COUNT, ATTR_BATCH_MAP_FD, ATTR_ELEM_KEY, ATTR_ELEM_MAP_FD, BpfWriteKey, BpfWriteValue,
        Calibration, FNV_OFFSET, FNV_PRIME, HOT_KEY_MAX_BYTES, HotKey, KernelOffsets, is_batch, is_lookup,
        is_write,
    },
    config::Global,
    lost,
};

use crate::maps::{BPF_WRITES, CALIB, HOT_KEYS, TRACKED, count_lost, global};
use crate::util::{BPF_NOEXIST, pid_tid, read_user};

#[tracepoint]
pub fn sys_enter_bpf(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter_bpf(&ctx);
    0
}

/// A map as the kernel holds it.
struct Map {
    id: u32,
    map_type: u32,
    key_size: u32,
    name: [u8; 16],
}

fn try_sys_enter_bpf(ctx: &TracePointContext) -> Result<(), ()> {
    let g = global();
    // SAFETY: offsets of the syscall tracepoint record, from its format file.
    let cmd = unsafe { ctx.read_at::<u64>(g.bpf_cmd_off as usize) }.map_err(|_| ())? as u32;
    let lookup = is_lookup(cmd);
    if !is_write(cmd) && !lookup {
        return Ok(());
    }
    let (pid, tid) = pid_tid();
    if pid == g.self_pid {
        if lookup && g.bpf_calibrating != 0 {
            // SAFETY: as above.
            let uattr = unsafe { ctx.read_at::<u64>(g.bpf_uattr_off as usize) }.map_err(|_| ())?;
            calibrate(&g, uattr);
        }
        return Ok(());
    }
    if g.bpf_maps == 0 || (lookup && g.bpf_reads == 0) {
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
    let map = if g.bpf_resolve != 0 { map_of(&g.kernel, fd, g.bpf_map_fops) } else { None };
    let map_id = map.as_ref().map_or(0, |m| m.id);
    let key = BpfWriteKey { pid, tid, fd, cmd, map_id };
    match BPF_WRITES.get_ptr_mut(&key) {
        Some(p) => {
            // SAFETY: per-CPU value of a key that includes the tid.
            unsafe {
                (*p).calls += 1;
                (*p).elems += elems;
            }
        }
        None => {
            let (map_name, map_type) = map.as_ref().map_or(([0; 16], 0), |m| (m.name, m.map_type));
            let v = BpfWriteValue {
                calls: 1,
                elems,
                comm: bpf_get_current_comm().unwrap_or_default(),
                map_name,
                map_type,
                _pad: 0,
            };
            if BPF_WRITES.insert(&key, &v, BPF_NOEXIST).is_err() {
                count_lost(lost::BPF_WRITES_FULL);
            }
        }
    }
    if g.bpf_hot_keys != 0
        && !lookup
        && !is_batch(cmd)
        && let Some(m) = &map
    {
        count_hot_key(m, uattr);
    }
    Ok(())
}

#[inline(always)]
fn read_kernel<T>(addr: u64) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel validates the address; T is plain data.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// The file at `fd` in the current task: (file, its f_op).
#[inline(always)]
fn file_of(k: &KernelOffsets, fd: u32) -> Option<(u64, u64)> {
    // SAFETY: the helper returns the current task_struct; it is only read.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read_kernel(task + k.task_files as u64)?;
    let fdt: u64 = read_kernel(files + k.files_fdt as u64)?;
    let max_fds: u32 = read_kernel(fdt + k.fdt_max_fds as u64)?;
    if fd >= max_fds {
        return None;
    }
    let fds: u64 = read_kernel(fdt + k.fdt_fd as u64)?;
    let file: u64 = read_kernel(fds + fd as u64 * 8)?;
    if file == 0 {
        return None;
    }
    Some((file, read_kernel(file + k.file_f_op as u64)?))
}

#[inline(always)]
fn read_map(k: &KernelOffsets, file: u64) -> Option<Map> {
    let map: u64 = read_kernel(file + k.file_private_data as u64)?;
    Some(Map {
        id: read_kernel(map + k.map_id as u64)?,
        map_type: read_kernel(map + k.map_type as u64)?,
        key_size: read_kernel(map + k.map_key_size as u64)?,
        name: read_kernel(map + k.map_name as u64)?,
    })
}

/// The BPF map behind `fd`, or None when it is something else (any other
/// kind of file has other `f_op`s; its private data is never read).
#[inline(always)]
fn map_of(k: &KernelOffsets, fd: u32, bpf_map_fops: u64) -> Option<Map> {
    let (file, f_op) = file_of(k, fd)?;
    if f_op != bpf_map_fops || f_op == 0 {
        return None;
    }
    read_map(k, file)
}

/// mapaudit's own lookup on one of its maps: record what the chain finds,
/// so that userspace can check the offsets against the map's real id and
/// learn `bpf_map_fops`.
#[inline(always)]
fn calibrate(g: &Global, uattr: u64) {
    let Ok(fd) = read_user::<u32>(uattr + ATTR_ELEM_MAP_FD as u64) else { return };
    let Some((file, f_op)) = file_of(&g.kernel, fd) else { return };
    let Some(m) = read_map(&g.kernel, file) else { return };
    if let Some(c) = CALIB.get_ptr_mut(0) {
        // SAFETY: a plain-data array slot; userspace reads it after the call.
        unsafe { *c = Calibration { f_op, map_id: m.id, map_type: m.map_type, name: m.name, done: 1, _pad: 0 } };
    }
}

/// Counts one write under the hash of its key's first bytes.
#[inline(always)]
fn count_hot_key(m: &Map, uattr: u64) {
    let Ok(key_ptr) = read_user::<u64>(uattr + ATTR_ELEM_KEY as u64) else { return };
    let len = if (m.key_size as usize) < HOT_KEY_MAX_BYTES { m.key_size as usize } else { HOT_KEY_MAX_BYTES };
    // Fixed-size reads only (8-byte words while they fit, then single
    // bytes): a read of `len` bytes at once loses its bound on older
    // verifiers (Linux 6.1 rejects the program: "R2 unbounded memory
    // access"). Never past the key's end, where the page may end.
    let mut h = FNV_OFFSET;
    let mut off = 0;
    for _ in 0..HOT_KEY_MAX_BYTES / 8 {
        if off + 8 > len {
            break;
        }
        let Ok(word) = read_user::<[u8; 8]>(key_ptr + off as u64) else { return };
        for b in word {
            h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
        }
        off += 8;
    }
    for _ in 0..7 {
        if off >= len {
            break;
        }
        let Ok(b) = read_user::<u8>(key_ptr + off as u64) else { return };
        h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
        off += 1;
    }
    let key = HotKey { map_id: m.id, _pad: 0, hash: h };
    match HOT_KEYS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value.
        Some(p) => unsafe { *p += 1 },
        None => {
            // LRU: a full table evicts its least recently written key (never a
            // hot one); a cold key's count restarting is no loss to the ranking.
            let _ = HOT_KEYS.insert(&key, &1, 0);
        }
    }
}
