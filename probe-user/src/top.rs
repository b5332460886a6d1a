//! `mapaudit top`: the live view. (The terminal UI lands in `tui`.)

use crate::cli::{LogLevel, TopArgs};

pub async fn run(_args: TopArgs, _log_level: LogLevel) -> anyhow::Result<i32> {
    anyhow::bail!("the live view is not built yet; use `mapaudit record`")
}
