use clap::Parser as _;

// mapaudit's model makes and drops millions of small rows under churn (a
// per-request map or goroutine is a row until folded into its class); with
// glibc's allocator, consolidating freed chunks was ~25 % of mapaudit's CPU
// and a quarter of the work left after the target exits (BENCHMARKS.md,
// issue 21's profile). mimalloc's per-thread free lists avoid both; musl's
// allocator, in the static build, is slower still.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's purge delay, by its place in v3's `mi_option_e` (mimalloc.h;
/// libmimalloc-sys does not name it). The enum's length pins the version
/// it was read from.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const _: () = assert!(libmimalloc_sys::_mi_option_last == 47, "mimalloc's option list changed: check the ordinal above");

/// Memory freed by the model (folded rows, drained batches) is kept for
/// reuse rather than returned to the kernel: under churn, purged pages
/// were faulted back and zeroed again and again — page zeroing was ~40 %
/// of mapaudit's CPU in the churn benchmark. (mimalloc is also built
/// without its transparent-huge-page advice, `no_thp`: a fault then zeroes
/// 4 KiB, not 2 MiB. Not through its `allow_thp` option: that disables
/// THP for the process with a prctl the audited command would inherit.)
/// The peak is what the model's bound allows (README "Limits").
fn tune_allocator() {
    // SAFETY: a plain option setter, before any thread but this one exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    // mapaudit's own exec guard (see host::exec_guard), before clap: it is
    // not a command for people.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == mapaudit::host::exec_guard::GUARD_ARG) {
        return std::process::ExitCode::from(mapaudit::host::exec_guard::main_from_args(&args[1..]) as u8);
    }
    let cli = mapaudit::Cli::parse();
    std::process::ExitCode::from(mapaudit::run(cli).clamp(0, 255) as u8)
}
