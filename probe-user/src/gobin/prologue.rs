//! Where to put a uprobe in a Go amd64 function: right after the
//! stack-bound check.
//!
//! Go functions with a frame begin with
//!   `cmp rsp,[r14+0x10]` or `lea r12,[rsp-N]; cmp r12,[r14+0x10]`
//!   `jbe <call morestack>`
//! and then `push rbp; mov rbp,rsp; sub rsp,…` (seen in every routine of the
//! go1.21–go1.27 fixtures). Attaching after the `jbe` has three benefits:
//! `[rsp]` is still the return address (nothing was pushed yet), the probed
//! instruction is `push rbp`, which x86 uprobes emulate instead of
//! single-stepping `cmp` (an order of magnitude cheaper), and the probe does
//! not fire a second time when the stack grows (morestack restarts the
//! function at its entry, which is before the probe).
//!
//! Only this exact shape is accepted: any other start (huge frames use a
//! different check, assembly functions have none) keeps the entry.

use iced_x86::{
    Decoder, DecoderOptions, Formatter as _, Instruction, IntelFormatter, Mnemonic, OpKind,
    Register,
};

/// `g.stackguard0`, what the prologue compares against (R14 holds `g`).
const STACKGUARD0: u64 = 0x10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attach {
    /// Where to attach, as a virtual address.
    pub vaddr: u64,
    /// `true` if the probe at `vaddr` counts a call once, after the stack
    /// check: the first instruction after it (amd64), or its branch (arm64,
    /// with `at_stack_check`).
    pub after_prologue: bool,
    /// `vaddr` is the stack check's conditional branch (arm64): a hit counts
    /// only when it falls through (`probe_common::uprobe::Cookie::at_stack_check`).
    pub at_stack_check: bool,
    /// The instruction at `vaddr` in Intel syntax, e.g. `push rbp`.
    pub instruction: String,
}

/// Finds the attach point of a function whose code (from its entry) is
/// `code`, loaded at `entry`.
pub(crate) fn attach_point(code: &[u8], entry: u64) -> Attach {
    let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut next = || {
        dec.can_decode()
            .then(|| dec.decode())
            .filter(|i| !i.is_invalid())
    };
    let after = (|| {
        let mut i = next()?;
        let checked = if is_lea_r12_rsp(&i) {
            i = next()?;
            Register::R12
        } else {
            Register::RSP
        };
        if !is_cmp_stackguard(&i, checked) {
            return None;
        }
        let jbe = next()?;
        (jbe.mnemonic() == Mnemonic::Jbe).then(|| jbe.next_ip())
    })();
    let vaddr = after.unwrap_or(entry);
    let instruction = vaddr
        .checked_sub(entry)
        .and_then(|off| code.get(usize::try_from(off).ok()?..))
        .map(|rest| {
            let mut d = Decoder::with_ip(64, rest, vaddr, DecoderOptions::NONE);
            format(&d.decode())
        })
        .unwrap_or_default();
    Attach {
        vaddr,
        after_prologue: after.is_some(),
        at_stack_check: false,
        instruction,
    }
}

/// (target, return address) of every direct call in `code` (loaded at
/// `entry`): e.g. Go 1.27's `mapaccess1_faststr`, a thin wrapper, calls
/// `mapaccess2_faststr`.
pub(crate) fn direct_calls(code: &[u8], entry: u64) -> Vec<(u64, u64)> {
    let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut out = Vec::new();
    while dec.can_decode() {
        let i = dec.decode();
        if i.mnemonic() == Mnemonic::Call && i.op0_kind() == OpKind::NearBranch64 {
            out.push((i.near_branch64(), i.next_ip()));
        }
    }
    out
}

/// How far the stack pointer drops from `from` (a probe point in `code`,
/// loaded at `entry`) to the entry of the routine called by the call that
/// returns to `call_ret`: pushes, `sub rsp, imm` and the call's own return
/// address, along the straight line of code between them. None if anything
/// else moves rsp on the way, or the line branches.
pub(crate) fn sp_drop_to_call(code: &[u8], entry: u64, from: u64, call_ret: u64) -> Option<u64> {
    let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut drop: i64 = 0;
    let mut on = false;
    while dec.can_decode() {
        let i = dec.decode();
        if i.ip() == from {
            on = true;
        }
        if !on {
            continue;
        }
        if i.next_ip() == call_ret {
            return (i.mnemonic() == Mnemonic::Call).then(|| u64::try_from(drop + 8).ok()).flatten();
        }
        let writes_rsp = i.op0_kind() == OpKind::Register && i.op0_register() == Register::RSP;
        match i.mnemonic() {
            Mnemonic::Push => drop += 8,
            Mnemonic::Pop => drop -= 8,
            Mnemonic::Sub if writes_rsp && matches!(i.op1_kind(), OpKind::Immediate8to64 | OpKind::Immediate32to64) => {
                drop += i.immediate(1) as i64;
            }
            Mnemonic::Ret | Mnemonic::Jmp | Mnemonic::Call | Mnemonic::Int3 | Mnemonic::Ud2 => return None,
            _ if writes_rsp || i.op0_kind() == OpKind::NearBranch64 => return None,
            _ => {}
        }
    }
    None
}

pub(crate) fn format(i: &Instruction) -> String {
    let mut out = String::new();
    IntelFormatter::new().format(i, &mut out);
    out
}

fn is_lea_r12_rsp(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Lea
        && i.op0_kind() == OpKind::Register
        && i.op0_register() == Register::R12
        && i.memory_base() == Register::RSP
        && i.memory_index() == Register::None
}

fn is_cmp_stackguard(i: &Instruction, reg: Register) -> bool {
    i.mnemonic() == Mnemonic::Cmp
        && i.op0_kind() == OpKind::Register
        && i.op0_register() == reg
        && i.op1_kind() == OpKind::Memory
        && i.memory_base() == Register::R14
        && i.memory_index() == Register::None
        && i.memory_displacement64() == STACKGUARD0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        // cmp rsp,[r14+0x10]; jbe +0x503; push rbp
        let short = [0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x03, 0x05, 0, 0, 0x55];
        let a = attach_point(&short, 0x1000);
        assert_eq!(
            a,
            Attach {
                vaddr: 0x100a,
                after_prologue: true,
                at_stack_check: false,
                instruction: "push rbp".into()
            }
        );
        // lea r12,[rsp-0x30]; cmp r12,[r14+0x10]; jbe rel8; push rbp
        let lea = [
            0x4c, 0x8d, 0x64, 0x24, 0xd0, 0x4d, 0x3b, 0x66, 0x10, 0x76, 0x10, 0x55,
        ];
        let a = attach_point(&lea, 0x2000);
        assert_eq!(
            (a.vaddr, a.after_prologue, a.instruction.as_str()),
            (0x200b, true, "push rbp")
        );
        // A call found by its target; other calls and the rest skipped.
        // push rbp; call +0 (to 0x1006); call +0x10; ret
        let calls = [0x55, 0xe8, 0, 0, 0, 0, 0xe8, 0x10, 0, 0, 0, 0xc3];
        assert_eq!(direct_calls(&calls, 0x1000), vec![(0x1006, 0x1006), (0x101b, 0x100b)]);
        assert!(direct_calls(&[0x55, 0xc3], 0x1000).is_empty());
        // Go 1.27's mapaccess1_faststr after its stack check:
        // push rbp; mov rbp,rsp; sub rsp,0x20; mov [rsp+0x40],rcx; call …
        let wrapper = [
            0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20, 0x48, 0x89, 0x4c, 0x24, 0x40, 0xe8, 0x48, 0, 0, 0,
        ];
        assert_eq!(sp_drop_to_call(&wrapper, 0x1000, 0x1000, 0x1012), Some(8 + 0x20 + 8));
        // A branch on the way, or no such call: unknown.
        let branchy = [0x55, 0x74, 0x00, 0xe8, 0, 0, 0, 0];
        assert_eq!(sp_drop_to_call(&branchy, 0x1000, 0x1000, 0x1008), None);
        assert_eq!(sp_drop_to_call(&wrapper, 0x1000, 0x1000, 0x1011), None);
        // Wrong guard offset, wrong register, truncated, garbage: entry.
        for code in [
            &[0x49, 0x3b, 0x66, 0x18, 0x76, 0x10, 0x55][..],
            &[0x48, 0x3b, 0x66, 0x10, 0x76, 0x10][..],
            &[0x49, 0x3b][..],
            &[][..],
            &[0xff; 16][..],
        ] {
            let a = attach_point(code, 0x3000);
            assert_eq!((a.vaddr, a.after_prologue), (0x3000, false));
        }
    }
}
