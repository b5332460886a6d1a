//! The host operating system outside BPF: processes under /proc (`proc`),
//! signals that cannot reach a reused pid (`pidctl`), the user mapaudit acts
//! for (`identity`), what a started command inherits (`command`), files
//! created safely as that user (`safefile`), the exec guard that never leaves
//! a process stopped (`exec_guard`), and the pod and container a process runs
//! in (`container`).

pub mod command;
pub mod container;
pub mod exec_guard;
pub mod identity;
pub mod pidctl;
pub mod proc;
pub mod remote_mem;
pub mod safefile;
