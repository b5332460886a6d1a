//! `cargo xtask run`: mapaudit as root, by default on the bundled demo.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{is_root, root};

pub fn run(demo: &str, args: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!("mapaudit loads eBPF programs and needs root: run `sudo -E cargo xtask run`");
    }
    crate::build()?;
    let bin = root().join("target/release/mapaudit");
    let mut c = Command::new(&bin);
    if args.is_empty() {
        let demo_bin = fixtures::build("demo", fixtures::GO_NEWEST, fixtures::Variant::Plain)?;
        let on_tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        if on_tty {
            c.arg("top");
        } else {
            eprintln!("xtask: stdout is not a terminal: recording the demo for 10 s instead of the live view");
            c.args(["record", "--duration", "10s", "--json", "-"]);
        }
        c.arg("--").arg(demo_bin).args(["-mode", demo]);
    } else {
        c.args(args);
    }
    eprintln!("xtask: running {c:?}");
    let st = c.status().with_context(|| format!("starting {}", bin.display()))?;
    std::process::exit(st.code().unwrap_or(1));
}
