//! The host operating system outside BPF: processes under /proc (`proc`),
//! signals that cannot reach a reused pid (`pidctl`), the user mapaudit acts
//! for (`identity`), what a started command inherits (`command`), and files
//! created safely as that user (`safefile`).

pub mod command;
pub mod identity;
pub mod pidctl;
pub mod proc;
pub mod remote_mem;
pub mod safefile;
