//! Writes mapaudit's man pages (one per subcommand) and its bash, zsh and
//! fish completions from the clap definitions, so that they cannot drift
//! from `--help`. `cargo xtask dist` runs it: `dist-docs OUT_DIR` writes
//! `OUT_DIR/man/*.1` and `OUT_DIR/completions/{mapaudit.bash,_mapaudit,mapaudit.fish}`.
//! An example rather than part of the binary or of xtask: xtask must build
//! before the eBPF toolchain exists (`cargo xtask setup` provisions it), and
//! the shipped binary need not carry the generators.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args_os().nth(1).context("usage: dist-docs OUT_DIR")?);
    let mut cmd = mapaudit::Cli::command();
    // `mapaudit help` is clap's; its page would repeat this one.
    cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    let pages: Vec<String> = std::iter::once(&cmd)
        .chain(cmd.get_subcommands().filter(|s| !s.is_hide_set()))
        .map(|c| c.get_display_name().unwrap_or(c.get_name()).to_string())
        .collect();
    for page in std::iter::once(&cmd).chain(cmd.get_subcommands().filter(|s| !s.is_hide_set())) {
        write_page(page, &cmd, &pages, &man)?;
    }
    let comp = out.join("completions");
    std::fs::create_dir_all(&comp).with_context(|| format!("creating {}", comp.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut mapaudit::Cli::command(), "mapaudit", &comp)
            .with_context(|| format!("writing the {shell} completion"))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// One man page: clap_mangen's sections, then the `--help` epilogue split
/// into its own sections (EXAMPLES, EXIT STATUS), the full version and
/// SEE ALSO.
fn write_page(cmd: &clap::Command, top: &clap::Command, pages: &[String], dir: &Path) -> anyhow::Result<()> {
    let man = Man::new(cmd.clone()).source(format!("mapaudit {}", top.get_version().unwrap_or_default())).manual("mapaudit manual");
    let path = dir.join(man.get_filename());
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut buf)?;
    }
    let mut roff = Roff::default();
    if let Some(after) = cmd.get_after_help() {
        epilogue(&mut roff, &after.to_string());
    }
    roff.control("SH", ["VERSION"]);
    for line in top.get_long_version().unwrap_or_default().lines() {
        roff.text([roman(line)]).control("br", [] as [&str; 0]);
    }
    let me = cmd.get_display_name().unwrap_or(cmd.get_name());
    let others: Vec<String> = pages.iter().filter(|p| p.as_str() != me).map(|p| format!("{p}(1)")).collect();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(others.join(", "))]);
    roff.to_writer(&mut buf)?;
    let mut f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(&buf).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// `--help` epilogues are blocks separated by blank lines, each starting
/// with `HEADING:`. Example lines keep their layout (no filling).
fn epilogue(roff: &mut Roff, text: &str) {
    for block in text.split("\n\n") {
        let (heading, body) = match block.split_once(':') {
            Some((h, b)) if !h.is_empty() && h.chars().all(|c| c.is_ascii_uppercase() || c == ' ') => (h, b),
            _ => ("NOTES", block),
        };
        roff.control("SH", [heading]);
        let body = body.strip_prefix('\n').unwrap_or(body.trim_start());
        if body.contains('\n') {
            roff.control("nf", [] as [&str; 0]);
            for line in body.lines() {
                roff.text([roman(line)]);
            }
            roff.control("fi", [] as [&str; 0]);
        } else {
            roff.text([roman(body.trim())]);
        }
    }
}
