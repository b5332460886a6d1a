//! What `mapaudit --version` says: the version, the commit it was built from
//! (set by build.rs; "unknown" in a source tarball without `.git`) and what
//! it was tested on.

/// The commit this binary was built from, or "unknown".
pub const COMMIT: &str = env!("MAPAUDIT_GIT_COMMIT");

/// `mapaudit --version` (`-V` prints the version alone). The architectures
/// and kernels are the ones the root end-to-end tests ran on; update this
/// line when CI adds one. The Go range is read from fixtures/go-versions.txt.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("MAPAUDIT_GIT_COMMIT"),
    "\ntested on: x86_64, Linux 6.18 (Debian 12); Go ",
    env!("MAPAUDIT_GO_TESTED"),
    "\nneeds: Linux >= 5.15 with BTF, uprobes and syscall tracepoints",
);
