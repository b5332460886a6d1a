//! Reading words out of another process's memory with `process_vm_readv`
//! (one system call per batch of addresses): how map lengths are sampled
//! without any work in the probe. Read-only: the target is never touched.

use std::io::IoSliceMut;

use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

/// Addresses per system call (the kernel's `UIO_MAXIOV`).
const BATCH: usize = 1024;

/// The little-endian u64 at each address of `pid`, in order; None where
/// the address could not be read (unmapped, or the process is gone).
pub fn read_u64s(pid: u32, addrs: &[u64]) -> Vec<Option<u64>> {
    let mut out = vec![None; addrs.len()];
    let Ok(raw) = i32::try_from(pid) else { return out };
    let pid = Pid::from_raw(raw);
    let mut at = 0;
    while at < addrs.len() {
        let end = (at + BATCH).min(addrs.len());
        let mut buf = vec![0u8; (end - at) * 8];
        let remote: Vec<RemoteIoVec> = addrs[at..end].iter().map(|&a| RemoteIoVec { base: a as usize, len: 8 }).collect();
        let got = {
            let mut local = [IoSliceMut::new(&mut buf)];
            process_vm_readv(pid, &mut local, &remote)
        };
        match got {
            Ok(n) => {
                // The kernel stops at the first address it cannot read:
                // the words before it are whole, that one is skipped.
                let whole = n / 8;
                for (i, word) in buf.chunks_exact(8).take(whole).enumerate() {
                    out[at + i] = word.try_into().ok().map(u64::from_le_bytes);
                }
                at = if at + whole >= end { end } else { at + whole + 1 };
            }
            // ESRCH (gone), EPERM: nothing more to read. EFAULT on the
            // first address: skip it.
            Err(nix::errno::Errno::EFAULT) => at += 1,
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_words_and_skips_unmapped_ones() {
        let words: Vec<u64> = vec![7, 0xdead_beef, u64::MAX];
        let me = std::process::id();
        let a = |i: usize| &words[i] as *const u64 as u64;
        // Address 8 is never mapped.
        let got = read_u64s(me, &[a(0), 8, a(1), a(2)]);
        assert_eq!(got, [Some(7), None, Some(0xdead_beef), Some(u64::MAX)]);
        assert!(read_u64s(me, &[]).is_empty());
    }
}
