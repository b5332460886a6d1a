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
    /// `true` if `vaddr` is the first instruction after the stack check.
    pub after_prologue: bool,
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
        instruction,
    }
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
