//! The three commands, each one entry point over the layers below:
//! `top` (live view), `record` (JSON report) and `check` (gate a report).

pub mod check;
pub mod record;
pub mod serve;
pub mod top;

use crate::host::{identity, safefile};

/// A fresh log file `STEM-PID-RANDOM.log` in the temp directory, created as
/// the user mapaudit acts for (`--user NAME`, or the sudo user).
pub fn open_log(stem: &str, user: Option<&str>) -> anyhow::Result<(std::fs::File, std::path::PathBuf)> {
    let create = || safefile::create_log(stem);
    Ok(match identity::Identity::resolve(user)? {
        Some(who) => who.run_as(create)??,
        None => create()?,
    })
}
