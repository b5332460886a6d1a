//! `cargo xtask soak`: the target-never-notices tests at ≥ 60 s per fixture.

use anyhow::bail;

use crate::{cargo, is_root, root, status};

pub fn run(scale: u32) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the soak tests load eBPF programs and need root: run `sudo -E cargo xtask soak`");
    }
    crate::build()?;
    let mut c = cargo();
    c.env("MAPAUDIT_REQUIRE_ROOT_TESTS", "1")
        .env("MAPAUDIT_SOAK_SCALE", scale.to_string())
        .env("MAPAUDIT_BIN", root().join("target/release/mapaudit"))
        .args(["test", "--release", "-p", "probe-user", "--test", "e2e", "--", "soak::", "--test-threads=1", "--nocapture"]);
    status(c)
}
