//! Everything that depends on the CPU the probed Go program runs on, in one
//! place: which registers Go's internal ABI uses at the probe point (after
//! the stack check of a routine's prologue on amd64, on the check's branch
//! on arm64, see `probe-user`'s `gobin::prologue*`), where the return
//! address is there and whether the routine goes on into its body. The object is
//! built per target (`bpf_target_arch`, set by `probe-user/build.rs`).

use aya_ebpf::programs::ProbeContext;

use crate::util::read_user;

/// Go's internal ABI registers at the probe point.
pub struct GoCall {
    /// `*g`.
    pub g: u64,
    /// First argument: `*maptype`; for `fatal`, the message pointer.
    pub arg0: u64,
    /// Second argument: the map header; for `fatal`, the message length.
    pub arg1: u64,
    /// Stack pointer (nothing of the routine's frame allocated yet).
    pub sp: u64,
    /// The return address, where the probe point keeps it without a read
    /// (arm64: the link register); 0 where it is on the stack (amd64).
    lr: u64,
    /// The condition flags (arm64: PSTATE's NZCV); 0 on amd64, which never
    /// probes a branch.
    flags: u64,
}

#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
pub fn go_call(ctx: &ProbeContext) -> GoCall {
    // SAFETY: ctx.regs points at the pt_regs the kernel passed to this program.
    let regs = unsafe { &*ctx.regs };
    // g in R14, arguments in RAX, RBX.
    GoCall { g: regs.r14, arg0: regs.rax, arg1: regs.rbx, sp: regs.rsp, lr: 0, flags: 0 }
}

#[cfg(bpf_target_arch = "aarch64")]
#[inline(always)]
pub fn go_call(ctx: &ProbeContext) -> GoCall {
    // SAFETY: ctx.regs points at the pt_regs the kernel passed to this program.
    let regs = unsafe { &*ctx.regs };
    // g in R28, arguments in R0, R1; up to the stack check's branch nothing
    // has stored the link register (R30): it holds the return address.
    GoCall {
        g: regs.regs[28],
        arg0: regs.regs[0],
        arg1: regs.regs[1],
        sp: regs.sp,
        lr: regs.regs[30],
        flags: regs.pstate,
    }
}

impl GoCall {
    /// Whether the routine goes on into its body from the probe point. At a
    /// stack check's branch (`Cookie::at_stack_check`) it does unless the
    /// branch is taken: amd64 never probes there (its point after the check
    /// is emulated); on arm64 `b.ls` branches when C is clear or Z set
    /// (`cmp sp, stackguard0`: sp at or below the guard).
    #[cfg(bpf_target_arch = "x86_64")]
    #[inline(always)]
    pub fn enters_body(&self, _at_stack_check: bool) -> bool {
        let _ = self.flags;
        true
    }

    #[cfg(bpf_target_arch = "aarch64")]
    #[inline(always)]
    pub fn enters_body(&self, at_stack_check: bool) -> bool {
        const Z: u64 = 1 << 30;
        const C: u64 = 1 << 29;
        !at_stack_check || self.flags & (C | Z) == C
    }

    /// The routine's return address (the caller's call site).
    #[cfg(bpf_target_arch = "x86_64")]
    #[inline(always)]
    pub fn return_address(&self) -> Result<u64, ()> {
        // `[rsp]`: the call pushed it and no push has run yet.
        let _ = self.lr;
        read_user(self.sp)
    }

    #[cfg(bpf_target_arch = "aarch64")]
    #[inline(always)]
    pub fn return_address(&self) -> Result<u64, ()> {
        Ok(self.lr)
    }
}
