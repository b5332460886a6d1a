use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // mapaudit's own exec guard (see host::exec_guard), before clap: it is
    // not a command for people.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == mapaudit::host::exec_guard::GUARD_ARG) {
        return std::process::ExitCode::from(mapaudit::host::exec_guard::main_from_args(&args[1..]) as u8);
    }
    let cli = mapaudit::Cli::parse();
    std::process::ExitCode::from(mapaudit::run(cli).clamp(0, 255) as u8)
}
