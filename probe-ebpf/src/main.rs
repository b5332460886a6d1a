//! mapaudit's kernel side: one object, one module per hook family, maps in
//! `maps.rs`. Counting happens here, in place; only rare events go to
//! userspace, through a ring buffer it drains on a timer.
#![no_std]
#![no_main]

mod arch;
mod bench;
mod bpf_syscall;
mod maps;
mod map_write;
mod sched;
mod util;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects unbounded loops; this is never reached at run time
    // because the code has no panicking paths.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
