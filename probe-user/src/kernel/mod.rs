//! Everything that talks to the kernel's BPF side: environment checks
//! (`preflight`), loading and attaching the probes (`loader`), emptying the
//! per-CPU counter tables (`counters`), turning counters and ring-buffer
//! events into the model (`collector`), naming kernel BPF maps (`bpfmaps`)
//! checking the decoded goroutine-id offsets on the first hits (`sanity`),
//! and linking the probe program at many points at once (`uprobe_multi`).

pub mod bpfmaps;
pub mod collector;
pub mod counters;
pub mod loader;
pub mod preflight;
pub mod sanity;
pub mod uprobe_multi;
