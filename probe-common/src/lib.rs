//! Plain-old-data shared by the kernel programs (`probe-ebpf`) and userspace
//! (`probe-user`). Every type crossing the boundary is `#[repr(C)]` with
//! explicit padding and no niches, so both sides agree on the bytes.
#![no_std]

pub mod bpfmap;
pub mod config;
pub mod events;
pub mod lost;
pub mod maps;
pub mod uprobe;

/// Implements `aya::Pod` for the listed types when built for userspace.
macro_rules! user_pod {
    ($($t:ty),* $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: the type is `#[repr(C)]`, `Copy`, has explicit padding
            // fields and no invalid bit patterns.
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pub(crate) use user_pod;
