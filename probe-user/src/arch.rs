//! What depends on the CPU mapaudit itself runs on, in one place: the
//! function whose probing calibrates the cost of one probe hit (see
//! `session::budget`). The decoding of the probed Go binaries' code is by
//! their ELF machine instead (`gobin::prologue`), and the kernel side has its
//! own `arch` module (`probe-ebpf`).

// A function that starts like a Go routine after its prologue's stack check,
// where mapaudit attaches: amd64's first instruction is `push rbp` (emulated
// by the kernel's uprobes), arm64's stores the link register with a
// pre-indexed `str` (single-stepped out of line, as in Go).
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl mapaudit_calibration_target",
    ".type mapaudit_calibration_target,@function",
    "mapaudit_calibration_target:",
    "push rbp",
    "mov rbp, rsp",
    "pop rbp",
    "ret",
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl mapaudit_calibration_target",
    ".type mapaudit_calibration_target,@function",
    "mapaudit_calibration_target:",
    "str x30, [sp, #-16]!",
    "ldr x30, [sp], #16",
    "ret",
);

unsafe extern "C" {
    /// See above. Takes no arguments and only touches its own frame.
    pub fn mapaudit_calibration_target();
}
