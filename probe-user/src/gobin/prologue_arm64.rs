//! Where to put a uprobe in a Go arm64 function: on the stack-bound check's
//! branch — the arm64 counterpart of `prologue` (amd64).
//!
//! Go functions with a frame begin with (go1.21–go1.27, every probed routine)
//!   `ldr x16, [x28, #16]`                     (g.stackguard0; g is R28)
//!   `cmp sp, x16` or `sub x17, sp, #N; cmp x17, x16`
//!   `b.ls <call morestack>`
//! and then `str x30, [sp, #-N]!` (the frame, saving the link register).
//!
//! The probe goes on the `b.ls`. The arm64 kernel simulates branches in its
//! uprobe handler, while any other instruction (the `str` after it, the
//! loads and compares before it) is single-stepped out of line from a slot
//! of a page it maps into the process. Single-stepping out of line the
//! frame pushes of many routines, on several threads at once, corrupted
//! Go stacks in the emulated machine ("unexpected return pc", then false
//! "concurrent map writes" on maps whose header pointer had been replaced):
//! a slot reused between threads for routines with different frame sizes
//! appears to run the previous routine's `str`, with its frame size. A
//! simulated branch runs no instruction of the program anywhere else.
//!
//! At the `b.ls` the link register (R30) still holds the return address and
//! sp is the caller's. When the stack must grow the branch is taken and
//! morestack re-runs the function from its entry, through the probe again:
//! the probe (`probe_common::uprobe::Cookie::at_stack_check`) counts a hit
//! only when the flags say the branch falls through (C set, Z clear), so
//! each call counts once. Huge frames use a longer check and keep the
//! entry, as assembly functions (no check) do.
//!
//! Instructions are fixed-width words and only these few exact encodings
//! matter, so they are matched by mask and value (checked against
//! `go tool objdump` on the arm64 fixtures of every Go version in the
//! tests) instead of pulling a full AArch64 decoder in.

use super::prologue::Attach;

/// `ldr x16, [x28, #16]`.
const LDR_X16_STACKGUARD0: u32 = 0xf940_0b90;
/// `cmp sp, x16` (`subs xzr, sp, x16, uxtx`).
const CMP_SP_X16: u32 = 0xeb30_63ff;
/// `cmp x17, x16`.
const CMP_X17_X16: u32 = 0xeb10_023f;

fn words(code: &[u8]) -> impl Iterator<Item = u32> + '_ {
    code.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// `sub x17, sp, #imm` (either shift).
fn is_sub_x17_sp(w: u32) -> bool {
    w & 0xff80_0000 == 0xd100_0000 && w & 0x3ff == (31 << 5) | 17
}

/// `b.ls label`.
fn is_b_ls(w: u32) -> bool {
    w & 0xff00_001f == 0x5400_0009
}

/// `str x30, [sp, #simm9]!`: the frame push; returns the offset (negative).
fn str_lr_pre_index(w: u32) -> Option<i64> {
    (w & 0xffe0_0c00 == 0xf800_0c00 && w & 0x3ff == (31 << 5) | 30).then(|| simm9(w))
}

fn simm9(w: u32) -> i64 {
    let v = i64::from((w >> 12) & 0x1ff);
    if v >= 0x100 { v - 0x200 } else { v }
}

/// `add`/`sub` (immediate, 64-bit) with sp as destination: (is_sub, Rn, imm).
fn addsub_imm_to_sp(w: u32) -> Option<(bool, u32, i64)> {
    let is_add = w & 0xff80_0000 == 0x9100_0000;
    let is_sub = w & 0xff80_0000 == 0xd100_0000;
    if !(is_add || is_sub) || w & 0x1f != 31 {
        return None;
    }
    let shift = if w & (1 << 22) != 0 { 12 } else { 0 };
    Some((is_sub, (w >> 5) & 0x1f, i64::from((w >> 10) & 0xfff) << shift))
}

/// Any branch, return or trap: the end of a straight line of code.
fn is_branch(w: u32) -> bool {
    w & 0x7c00_0000 == 0x1400_0000 // b, bl
        || w & 0xff00_0010 == 0x5400_0000 // b.cond
        || w & 0x7e00_0000 == 0x3400_0000 // cbz, cbnz
        || w & 0x7e00_0000 == 0x3600_0000 // tbz, tbnz
        || w & 0xfe00_0000 == 0xd600_0000 // br, blr, ret
        || w & 0xff00_0000 == 0xd400_0000 // svc, brk, hlt
}

/// `bl label`: the target.
fn bl_target(w: u32, at: u64) -> Option<u64> {
    if w & 0xfc00_0000 != 0x9400_0000 {
        return None;
    }
    let imm26 = i64::from(w & 0x03ff_ffff);
    let off = if imm26 >= 1 << 25 { imm26 - (1 << 26) } else { imm26 } * 4;
    at.checked_add_signed(off)
}

/// How an instruction is shown in logs: the frame push and the stack
/// check's branch spelled out (what `Routine::attach_is_ideal` and the
/// tests look for), anything else as its word.
pub(crate) fn format(w: u32) -> String {
    if is_b_ls(w) {
        let off = imm19(w);
        return format!("b.ls .{}{:#x}", if off < 0 { '-' } else { '+' }, off.unsigned_abs());
    }
    match str_lr_pre_index(w) {
        Some(off) => format!("str x30, [sp, #{off}]!"),
        None => format!(".inst {w:#010x}"),
    }
}

/// The byte offset of a conditional branch.
fn imm19(w: u32) -> i64 {
    let v = i64::from((w >> 5) & 0x7_ffff);
    (if v >= 1 << 18 { v - (1 << 19) } else { v }) * 4
}

/// Whether `instruction` (as `format` spells it) saves the link register
/// and opens the frame: a nosplit function's entry is then as good as the
/// point after a stack check.
pub(crate) fn is_frame_push(instruction: &str) -> bool {
    instruction.starts_with("str x30, [sp, #-")
}

/// Finds the attach point of a function whose code (from its entry) is
/// `code`, loaded at `entry`.
pub(crate) fn attach_point(code: &[u8], entry: u64) -> Attach {
    let w: Vec<u32> = words(code).take(5).collect();
    // The index of the `b.ls`.
    let branch = match w.as_slice() {
        [LDR_X16_STACKGUARD0, CMP_SP_X16, b, ..] if is_b_ls(*b) => Some(2),
        [LDR_X16_STACKGUARD0, sub, CMP_X17_X16, b, ..] if is_sub_x17_sp(*sub) && is_b_ls(*b) => Some(3),
        _ => None,
    };
    let index = branch.unwrap_or(0);
    Attach {
        vaddr: entry + 4 * index as u64,
        after_prologue: branch.is_some(),
        at_stack_check: branch.is_some(),
        instruction: w.get(index).map(|&w| format(w)).unwrap_or_default(),
    }
}

/// (target, return address) of every direct call (`bl`) in `code` (loaded
/// at `entry`).
pub(crate) fn direct_calls(code: &[u8], entry: u64) -> Vec<(u64, u64)> {
    words(code)
        .zip((entry..).step_by(4))
        .filter_map(|(w, at)| Some((bl_target(w, at)?, at + 4)))
        .collect()
}

/// How far the stack pointer drops from `from` (a probe point in `code`,
/// loaded at `entry`) to the entry of the routine called by the `bl` that
/// returns to `call_ret` (a `bl` pushes nothing: the return address is in
/// the link register). None if anything else moves sp on the way, or the
/// line branches (the stack check's `b.ls` at `from` itself, the probe
/// point, falls through whenever the probe counts).
pub(crate) fn sp_drop_to_call(code: &[u8], entry: u64, from: u64, call_ret: u64) -> Option<u64> {
    let mut drop: i64 = 0;
    let mut line = words(code).zip((entry..).step_by(4)).skip_while(|&(_, at)| at != from).peekable();
    if line.peek().is_some_and(|&(w, _)| is_b_ls(w)) {
        line.next();
    }
    for (w, at) in line {
        if at + 4 == call_ret {
            return bl_target(w, at).and_then(|_| u64::try_from(drop).ok());
        }
        if let Some(off) = str_lr_pre_index(w) {
            drop -= off;
        } else if let Some((sub, rn, imm)) = addsub_imm_to_sp(w) {
            if rn != 31 {
                return None;
            }
            drop += if sub { imm } else { -imm };
        } else if is_branch(w) {
            return None;
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn shapes() {
        // Go 1.27 mapaccess1: ldr x16,[x28,#16]; cmp sp,x16; b.ls; str x30,[sp,#-48]!
        let small = bytes(&[0xf940_0b90, 0xeb30_63ff, 0x5400_0109, 0xf81d_0ffe, 0xf81f_83fd]);
        let a = attach_point(&small, 0x1000);
        assert_eq!(
            a,
            Attach { vaddr: 0x1008, after_prologue: true, at_stack_check: true, instruction: "b.ls .+0x20".into() }
        );
        assert!(!is_frame_push(&a.instruction));
        // Go 1.27 mapassign: …; sub x17,sp,#0x50; cmp x17,x16; b.ls; str x30,[sp,#-208]!
        let big = bytes(&[0xf940_0b90, 0xd101_43f1, 0xeb10_023f, 0x5400_26a9, 0xf813_0ffe]);
        let a = attach_point(&big, 0x2000);
        assert_eq!(
            (a.vaddr, a.after_prologue, a.at_stack_check, a.instruction.as_str()),
            (0x200c, true, true, "b.ls .+0x4d4")
        );
        // A backward b.ls (never emitted by Go, but decodable).
        assert_eq!(format(0x54ff_ffe9), "b.ls .-0x4");
        // runtime.fatal (nosplit): no check, the entry pushes the frame.
        let a = attach_point(&bytes(&[0xf81d_0ffe, 0xf81f_83fd]), 0x3000);
        assert_eq!((a.vaddr, a.after_prologue, a.at_stack_check), (0x3000, false, false));
        assert!(is_frame_push(&a.instruction));
        // Wrong guard offset, wrong condition, truncated, garbage: entry.
        for code in [
            bytes(&[0xf940_0f90, 0xeb30_63ff, 0x5400_0109, 0xf81d_0ffe]),
            bytes(&[0xf940_0b90, 0xeb30_63ff, 0x5400_0108, 0xf81d_0ffe]),
            bytes(&[0xf940_0b90, 0xeb30_63ff]),
            vec![0xf9, 0x40],
            vec![0xff; 16],
        ] {
            let a = attach_point(&code, 0x3000);
            assert_eq!((a.vaddr, a.after_prologue), (0x3000, false), "{code:x?}");
        }
        // Go 1.27 mapaccess1_faststr after its check, calling mapaccess2_faststr:
        // str x30,[sp,#-48]!; stur x29,[sp,#-8]; sub x29,sp,#8; str x2,[sp,#72]; bl +0x34
        let wrapper = bytes(&[0xf81d_0ffe, 0xf81f_83fd, 0xd100_23fd, 0xf900_27e2, 0x9400_000d]);
        assert_eq!(direct_calls(&wrapper, 0x1000), vec![(0x1010 + 0x34, 0x1014)]);
        assert_eq!(sp_drop_to_call(&wrapper, 0x1000, 0x1000, 0x1014), Some(48));
        // From the stack check's b.ls (the probe point), past it.
        let checked = bytes(&[0xf940_0b90, 0xeb30_63ff, 0x5400_0109, 0xf81d_0ffe, 0xf81f_83fd, 0x9400_000d]);
        assert_eq!(sp_drop_to_call(&checked, 0x1000, 0x1008, 0x1018), Some(48));
        // A sub sp,sp,#0x20 on the way adds to the drop; a branch makes it unknown.
        let sub = bytes(&[0xf81d_0ffe, 0xd100_83ff, 0x9400_000d]);
        assert_eq!(sp_drop_to_call(&sub, 0x1000, 0x1000, 0x100c), Some(48 + 0x20));
        let branchy = bytes(&[0xf81d_0ffe, 0xb400_0040, 0x9400_000d]);
        assert_eq!(sp_drop_to_call(&branchy, 0x1000, 0x1000, 0x100c), None);
        assert_eq!(sp_drop_to_call(&wrapper, 0x1000, 0x1000, 0x1010), None);
        // Backward bl (to morestack-like code before the function).
        assert_eq!(direct_calls(&bytes(&[0x97ff_ffff]), 0x1000), vec![(0xffc, 0x1004)]);
    }
}
