use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = mapaudit::Cli::parse();
    std::process::ExitCode::from(mapaudit::run(cli).clamp(0, 255) as u8)
}
