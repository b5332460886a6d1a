//! `cargo xtask build`: the eBPF object and mapaudit, release.

use crate::{cargo, setup, status};

pub fn build() -> anyhow::Result<()> {
    setup::ensure()?;
    let mut c = cargo();
    c.args(["build", "--release", "-p", "probe-user"]);
    status(c)
}
