use clap::Parser as _;

// mapaudit's model makes and drops millions of small rows under churn (a
// per-request map or goroutine is a row until folded into its class); with
// glibc's allocator, consolidating freed chunks was ~25 % of mapaudit's CPU
// and a quarter of the work left after the target exits (BENCHMARKS.md,
// issue 21's profile). mimalloc's per-thread free lists avoid both; musl's
// allocator, in the static build, is slower still.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mapaudit::tune_allocator();
    // mapaudit's own exec guard (see host::exec_guard), before clap: it is
    // not a command for people.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == mapaudit::host::exec_guard::GUARD_ARG) {
        return std::process::ExitCode::from(mapaudit::host::exec_guard::main_from_args(&args[1..]) as u8);
    }
    let cli = mapaudit::Cli::parse();
    std::process::ExitCode::from(mapaudit::run(cli).clamp(0, 255) as u8)
}
