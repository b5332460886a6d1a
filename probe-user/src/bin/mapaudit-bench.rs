//! Benchmark helper for `cargo xtask bench` (not installed for users):
//! measures what one binary can measure about itself — ring-buffer drain
//! throughput, the model's per-tick cost and one TUI frame. Prints one JSON
//! object on stdout. Timings only: it asserts nothing.
//!
//!   mapaudit-bench drain RATE SECONDS     (needs root)
//!   mapaudit-bench model GOROUTINES MAPS  (also times one TUI frame)
//!   mapaudit-bench churn SECONDS RATE     (model memory under map churn)
//!   mapaudit-bench lengths MAPS ROUNDS    (map-length sampling per refresh)
//!   mapaudit-bench snapshot ENTRIES RUNS  (drain of a full counter table; root)
//!   mapaudit-bench end REQUESTS           (a record's last model pass after churn)

use std::time::{Duration, Instant};

use mapaudit::kernel::collector::Collector;
use mapaudit::kernel::loader::{LoadOptions, Probes};
use mapaudit::model::{Location, Model};
use probe_common::events::BENCH_BURST;
use probe_common::lost;
use probe_common::uprobe::{WriteKey, routine};

// The allocator `mapaudit` runs with, tuned alike: the model's costs
// depend on it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    mapaudit::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let result = match args.get(1).map(String::as_str) {
        Some("drain") => drain(num(2, 2_000_000), num(3, 3)),
        Some("model") => model(num(2, 100_000) as usize, num(3, 10_000) as usize),
        Some("churn") => churn(num(2, 600), num(3, 50_000)),
        Some("fold") => fold(num(2, 100_000), num(3, 20_000), num(4, mapaudit::session::FOLD_STEP_ROWS as u64) as usize),
        Some("lengths") => lengths(num(2, 32) as usize, num(3, 1000) as usize),
        Some("lengths-target") => lengths_target(num(2, 32) as usize),
        Some("end") => end(num(2, 6_000)),
        Some("snapshot") => snapshot(num(2, u64::from(probe_common::maps::WRITES_DEFAULT_ENTRIES)), num(3, 5) as usize),
        _ => Err(anyhow::anyhow!(
            "usage: mapaudit-bench drain RATE SECONDS | model GOROUTINES MAPS | churn SECONDS RATE | lengths MAPS ROUNDS | snapshot ENTRIES RUNS | end REQUESTS"
        )),
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("mapaudit-bench: {e:#}");
            std::process::exit(2);
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A producer thread pumps `rate` events/s through the real ring buffer
/// (a tracepoint on its own getppid() calls emits bursts); this thread
/// drains with the collector's own code, woken like `record` is (only when
/// the buffer is half full, else on its poll timeout).
///
/// The producer starts only once the pump is attached, so every event it
/// causes is either drained or counted lost: `produced` = `expected`.
fn drain(rate: u64, seconds: u64) -> anyhow::Result<serde_json::Value> {
    mapaudit::kernel::preflight::check_all()?;
    let mut opts = LoadOptions::from_probe(&mapaudit::config::Probe::defaults())?;
    opts.bpf_maps = false;
    let mut probes = Probes::load(&opts)?;
    let mut collector = Collector::new(&mut probes)?;
    let calls_per_sec = (rate / BENCH_BURST as u64).max(1);
    let total = calls_per_sec * seconds;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let producer = std::thread::spawn(move || {
        let _ = ready_tx.send(());
        if go_rx.recv().is_err() {
            return Duration::ZERO;
        }
        let start = Instant::now();
        for i in 0..total {
            // Pace in 1 ms slices so the rate is steady.
            let due = start + Duration::from_nanos(i * 1_000_000_000 / calls_per_sec);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                std::thread::sleep(due - now);
            }
            // SAFETY: getppid has no preconditions.
            unsafe { libc::getppid() };
        }
        start.elapsed()
    });
    ready_rx.recv()?;
    // The pump fires for the whole process (pid = tgid), producer included.
    probes.start_bench_pump(std::process::id())?;
    let mut model = Model::new();
    let fd = {
        use std::os::fd::AsRawFd as _;
        collector.events.as_raw_fd()
    };
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let (mut wakeups, mut drains) = (0u64, 0u64);
    go_tx.send(())?;
    let t0 = Instant::now();
    while !producer.is_finished() {
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 250) } > 0 {
            wakeups += 1;
        }
        collector.drain(&mut model);
        drains += 1;
    }
    let produced_for = producer.join().map_err(|_| anyhow::anyhow!("producer panicked"))?;
    collector.drain(&mut model);
    let wall = t0.elapsed();
    let lost = collector.lost()[lost::RINGBUF_FULL as usize];
    let drained = collector.bench_events;
    let secs = produced_for.as_secs_f64().max(1e-9);
    Ok(serde_json::json!({
        "target_rate": rate,
        "seconds": seconds,
        "expected": total * BENCH_BURST as u64,
        "produced": drained + lost,
        "drained": drained,
        "lost": lost,
        "producer_s": produced_for.as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        // Rates over the producer's run (the last drain takes at most half
        // a ring buffer of backlog after it).
        "produced_per_s": (drained + lost) as f64 / secs,
        "drained_per_s": drained as f64 / secs,
        "wakeups": wakeups,
        "drains": drains,
    }))
}

/// Synthetic counters: `goroutines` goroutines on 64 threads writing
/// `maps` maps from 256 sites; times the tick (fold of a snapshot,
/// aggregation, rates, findings), the report, the TUI's own tick and one
/// TUI frame, and the memory they take.
fn model(goroutines: usize, maps: usize) -> anyhow::Result<serde_json::Value> {
    let rss0 = rss_kib();
    let mut m = Model::new();
    let key = |g: usize, j: usize| WriteKey {
        pid: 1000,
        tid: 2000 + (g % 64) as u32,
        goid: g as u64 + 1,
        map: 0xc000_0000 + ((g * 7 + j) % maps.max(1)) as u64 * 0x40,
        pc: 0x40_0000 + ((g + j) % 256) as u64 * 0x10,
        routine: if j == 0 { routine::MAPASSIGN_FASTSTR } else { routine::MAPDELETE_FASTSTR },
        _pad: [0; 3], inst: 0,
    };
    for pc in 0..256u64 {
        m.names.sites.insert((1000, 0x40_0000 + pc * 0x10), Location { function: format!("main.f{pc}"), file: "/src/main.go".into(), line: pc as u32 });
    }
    let snapshot = |round: u64| (0..goroutines).flat_map(move |g| (0..2).map(move |j| (key(g, j), round * 10 + g as u64 % 7 + 1)));
    m.set_counts(snapshot(1));
    m.tick(Duration::from_secs(1));
    let keys = m.counts().len();
    let t = Instant::now();
    m.set_counts(snapshot(2));
    let fold = t.elapsed();
    m.tick(Duration::from_secs(1));
    let tick = t.elapsed();
    let rss_tick = rss_kib().saturating_sub(rss0);
    let (app_tick, frame, frame_first) = frame(&m, tick)?;
    let t = Instant::now();
    let rep = mapaudit::output::report::build(&m, "t", 1.0);
    let report = t.elapsed();
    let json_bytes = serde_json::to_vec(&rep)?.len();
    Ok(serde_json::json!({
        "goroutines": goroutines,
        "maps": m.agg.maps.len(),
        "keys": keys,
        "tick_ms": ms(tick),
        "fold_ms": ms(fold),
        "report_ms": ms(report),
        "report_bytes": json_bytes,
        "app_tick_ms": ms(app_tick),
        "frame_ms": ms(frame),
        "frame_first_ms": ms(frame_first),
        "frame_size": [FRAME_W, FRAME_H],
        // Model and view state after the tick, and at the end (report too).
        "tick_rss_mib": rss_tick as f64 / 1024.0,
        "bytes_per_key": (rss_tick * 1024) as f64 / keys.max(1) as f64,
        "rss_mib": (rss_kib().saturating_sub(rss0)) as f64 / 1024.0,
        // The kernel counter's default capacity: what bounds `keys`.
        "max_entries_default": probe_common::maps::WRITES_DEFAULT_ENTRIES,
    }))
}

/// The model under churn, as `record` drives it, in simulated time: every
/// 100 ms drain (`session::DRAIN_EVERY`) brings `rate / 10` new map
/// instances, each written 3 times by a new goroutine of its own at one of
/// 16 sites (a server's per-request maps), plus one long-lived cache every
/// goroutine writes; idle rows are folded into their classes on the
/// session's own schedule (`session::fold_step`). Reports the process's RSS and the live rows once per
/// simulated minute: bounded means it stops growing.
fn churn(seconds: u64, rate: u64) -> anyhow::Result<serde_json::Value> {
    use mapaudit::session::{DRAIN_EVERY, fold_step};
    let rss0 = rss_kib();
    let mut m = Model::new();
    let per_drain = (rate as f64 * DRAIN_EVERY.as_secs_f64()).round() as u64;
    let drains = seconds * 1000 / DRAIN_EVERY.as_millis() as u64;
    let per_minute = 60_000 / DRAIN_EVERY.as_millis() as u64;
    let mut samples = Vec::new();
    let mut peak_rows = 0usize;
    let t = Instant::now();
    let mut n: u64 = 0;
    let mut schedule = Default::default();
    for d in 0..drains {
        let keys: Vec<(WriteKey, u64)> = (0..per_drain)
            .flat_map(|_| {
                n += 1;
                let goid = n;
                let w = |map: u64, inst: u32, pc: u64, count: u64| {
                    (
                        WriteKey {
                            pid: 1000,
                            tid: 2000 + (goid % 8) as u32,
                            goid,
                            // Addresses reused round-robin, as the allocator does.
                            map,
                            pc,
                            routine: routine::MAPASSIGN_FASTSTR,
                            _pad: [0; 3],
                            inst,
                        },
                        count,
                    )
                };
                [w(0xc000_0000 + (n % 4096) * 0x30, n as u32, 0x40_0000 + (n % 16) * 0x10, 3), w(0xc100_0000, 1, 0x40_1000, 1)]
            })
            .collect();
        m.add_counts(keys);
        fold_step(&mut m, &mut schedule);
        peak_rows = peak_rows.max(m.agg.maps.len() + m.agg.goroutines.len());
        if (d + 1) % per_minute == 0 {
            samples.push(serde_json::json!({
                "minute": (d + 1) / per_minute,
                "rss_mib": rss_kib().saturating_sub(rss0) as f64 / 1024.0,
                "map_rows": m.agg.maps.len(),
                "goroutine_rows": m.agg.goroutines.len(),
                "folded_map_rows": m.folded.map_rows,
            }));
        }
    }
    let rep = mapaudit::output::report::build(&m, "t", seconds as f64);
    let classes: u64 = rep.processes.iter().map(|p| p.map_classes.iter().map(|c| c.instances).sum::<u64>()).sum();
    Ok(serde_json::json!({
        "seconds": seconds,
        "rate": rate,
        "instances": n + 1,
        "instances_in_classes": classes,
        "peak_rows": peak_rows,
        "cpu_s": t.elapsed().as_secs_f64(),
        "samples": samples,
        "rss_mib": rss_kib().saturating_sub(rss0) as f64 / 1024.0,
    }))
}

/// One periodic fold of idle rows (`session::fold_step`): `idle` map
/// instances and goroutines of an exited process (each goroutine wrote its
/// own map 3 times, at one of 16 sites), beside `live` ones of a process
/// still writing. The loop that resumes processes stopped at exec waits
/// for it.
fn fold(idle: u64, live: u64, step_rows: usize) -> anyhow::Result<serde_json::Value> {
    use mapaudit::session::FOLD_IDLE_DRAINS;
    let mut m = Model::new();
    let key = |pid: u32, n: u64| WriteKey {
        pid,
        tid: 2000 + (n % 8) as u32,
        goid: n + 1,
        map: 0xc000_0000 + n * 0x30,
        pc: 0x40_0000 + (n % 16) * 0x10,
        routine: routine::MAPASSIGN_FASTSTR,
        _pad: [0; 3],
        inst: n as u32,
    };
    m.add_counts((0..idle).map(|n| (key(1000, n), 3)));
    for _ in 0..FOLD_IDLE_DRAINS {
        m.add_counts((0..16).map(|n| (key(1001, n), 1)));
    }
    m.add_counts((0..live).map(|n| (key(1001, n), 3)));
    m.tick(Duration::from_secs(1));
    // As the session does: a step per drain until nothing more folds.
    let (mut steps, mut folded, mut total, mut longest) = (0, 0, Duration::ZERO, Duration::ZERO);
    loop {
        let t = Instant::now();
        let (maps, goroutines) = m.fold_idle(FOLD_IDLE_DRAINS, 0, step_rows);
        let took = t.elapsed();
        if maps + goroutines == 0 {
            break;
        }
        (steps, folded, total, longest) = (steps + 1, folded + maps + goroutines, total + took, longest.max(took));
    }
    Ok(serde_json::json!({
        "idle_rows": idle * 2,
        "live_rows": live * 2,
        "folded_rows": folded,
        "fold_steps": steps,
        "step_rows": step_rows,
        "fold_ms": ms(total),
        "longest_step_ms": ms(longest),
    }))
}

/// The end of a `record` of a server that made a goroutine and maps per
/// request (as `churn-bench -n REQUESTS`: per request a handler goroutine
/// writing 4 maps of its own, 3 writes and a delete each at sites of their
/// own, a client goroutine writing 4 more, and a cache every handler
/// writes): the model holds every instance (none was idle long enough to
/// fold), and `Session::finish` keeps the busiest `ROWS_PER_CLASS` of each
/// class (`Model::fold_crowded`), then makes the last model pass and the
/// report. Times each part; this is wall time a user waits for after the
/// command exits.
fn end(requests: u64) -> anyhow::Result<serde_json::Value> {
    let mut m = Model::new();
    let (pid, cache) = (1000u32, 0xc000_0000u64);
    let key = |goid: u64, map: u64, inst: u32, pc: u64, r: u8| WriteKey { pid, tid: 2000 + (goid % 8) as u32, goid, map, pc, routine: r, _pad: [0; 3], inst };
    for j in 0..17u64 {
        m.names.sites.insert((pid, 0x40_0000 + j * 0x10), Location { function: format!("main.site{j}"), file: "/src/main.go".into(), line: j as u32 + 1 });
    }
    // A drain brings ~100 requests' keys (churn-bench: 6,000 in ~0.6 s).
    let mut keys = Vec::new();
    for r in 0..requests {
        // Addresses come back (the allocator, the stacks): instances differ.
        let (handler, client) = (100 + 2 * r, 101 + 2 * r);
        keys.push((key(handler, cache, 1, 0x40_0100, routine::MAPASSIGN_FASTSTR), 1));
        for (g, base) in [(handler, 0), (client, 4)] {
            for j in 0..4u64 {
                let (map, inst) = (0xc100_0000 + (r % 64) * 0x400 + (base + j) * 0x40, (r * 8 + base + j + 2) as u32);
                keys.push((key(g, map, inst, 0x40_0000 + (base + j) * 0x10, routine::MAPASSIGN_FASTSTR), 3));
                keys.push((key(g, map, inst, 0x40_0000 + (base + j) * 0x10 + 8, routine::MAPDELETE_FASTSTR), 1));
            }
        }
        if r % 100 == 99 || r + 1 == requests {
            m.add_counts(std::mem::take(&mut keys));
        }
        if r % 250 == 249 {
            m.tick(Duration::from_millis(250));
        }
    }
    let rows = m.agg.maps.len() + m.agg.goroutines.len();
    let t = Instant::now();
    let (maps, goroutines) = m.fold_crowded(mapaudit::cmd::record::ROWS_PER_CLASS);
    let fold = t.elapsed();
    m.tick(Duration::from_millis(250));
    let tick = t.elapsed() - fold;
    let t = Instant::now();
    let rep = mapaudit::output::report::build(&m, "t", 1.0);
    let report = t.elapsed();
    Ok(serde_json::json!({
        "requests": requests,
        "rows": rows,
        "folded_rows": maps + goroutines,
        "fold_ms": ms(fold),
        "tick_ms": ms(tick),
        "report_ms": ms(report),
        "report_maps": rep.processes.iter().map(|p| p.maps.len()).sum::<usize>(),
    }))
}

/// The snapshot of a full counter table, with the collector's own code:
/// the probe's real tables (loaded from its eBPF object with
/// `--max-entries ENTRIES`; no probe attached, so nothing else writes
/// them) are filled to capacity from userspace, then emptied by
/// `CounterTables::drain` — flip, grace period, batch lookup-and-delete —
/// `runs` times (the two tables in turn). Also the drain of an empty table
/// (flip and grace period alone), and the fold of the drained keys into
/// the model (`Model::add_counts`, every key new, as under churn; the
/// session also names new keys, not done here): that part runs on the
/// session's loop, which handles exec events between slices of
/// `session::FOLD_SLICE_KEYS` keys, while the drain runs on a thread of its
/// own. The longest slice is what an exec can wait behind.
fn snapshot(entries: u64, runs: usize) -> anyhow::Result<serde_json::Value> {
    use mapaudit::kernel::counters::CounterTables;
    use probe_common::uprobe::WriteValue;
    mapaudit::kernel::preflight::check_all()?;
    let entries = u32::try_from(entries).ok().filter(|&e| e > 0).ok_or_else(|| anyhow::anyhow!("ENTRIES must be 1..2^32"))?;
    let mut opts = LoadOptions::from_probe(&mapaudit::config::Probe::defaults())?;
    opts.bpf_maps = false;
    opts.writes_entries = entries;
    let mut probes = Probes::load(&opts)?;
    let mut tables = CounterTables::new(&mut probes.ebpf)?;
    // Tuples as a server's churn makes them: a goroutine and a map instance
    // each, on 8 threads, at 16 sites, in one process.
    let keys: Vec<WriteKey> = (0..u64::from(entries))
        .map(|i| WriteKey {
            pid: 1000,
            tid: 2000 + (i % 8) as u32,
            goid: i + 1,
            map: 0xc000_0000 + (i % 4096) * 0x30,
            pc: 0x40_0000 + (i % 16) * 0x10,
            routine: routine::MAPASSIGN_FASTSTR,
            _pad: [0; 3],
            inst: i as u32 + 1,
        })
        .collect();
    let value = WriteValue { count: 3, maptype: 0x4a_0000, gopc: 0x41_0000 };
    let mut out = Vec::new();
    // The empty table: flip and grace period (and one empty batch read).
    let mut empty_ms = Vec::new();
    for _ in 0..runs.max(1) {
        out.clear();
        let t = Instant::now();
        tables.drain(&mut out)?;
        empty_ms.push(ms(t.elapsed()));
    }
    let (mut drain_ms, mut fold_ms, mut slice_ms, mut filled) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let slice = mapaudit::session::FOLD_SLICE_KEYS;
    for _ in 0..runs.max(1) {
        let n = tables.bench_fill(&keys, value)?;
        filled.push(n);
        // As the drainer thread does it: a fresh vector per drain.
        let mut out = Vec::new();
        let t = Instant::now();
        let got = tables.drain(&mut out)?;
        drain_ms.push(ms(t.elapsed()));
        if got != n || out.iter().any(|(_, d)| d.count != value.count * tables.ncpus() as u64) {
            anyhow::bail!("drained {got} keys of {n} filled, or wrong sums over CPUs");
        }
        let mut m = Model::new();
        let t = Instant::now();
        let mut longest = Duration::ZERO;
        for part in out.chunks(slice) {
            let t = Instant::now();
            m.add_counts(part.iter().map(|(k, d)| (*k, d.count)));
            longest = longest.max(t.elapsed());
        }
        fold_ms.push(ms(t.elapsed()));
        slice_ms.push(ms(longest));
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let keys_filled = filled.iter().copied().min().unwrap_or(0);
    let drain = median(&drain_ms);
    Ok(serde_json::json!({
        "entries": entries,
        "keys": keys_filled,
        "full": keys_filled == entries as usize,
        "ncpus": tables.ncpus(),
        "runs": runs,
        "drain_ms": drain_ms,
        "drain_ms_median": drain,
        "empty_drain_ms_median": median(&empty_ms),
        "ns_per_key": (drain - median(&empty_ms)).max(0.0) * 1e6 / keys_filled.max(1) as f64,
        "fold_ms_median": median(&fold_ms),
        "fold_slice_keys": slice,
        "fold_slice_ms_max_median": median(&slice_ms),
    }))
}

const FRAME_W: u16 = 160;
const FRAME_H: u16 = 48;

/// The live view on `m`: the App's tick (rate histories, selection), then
/// frames drawn on ratatui's TestBackend. Returns (app tick, median of 5
/// frames, first frame).
fn frame(m: &Model, cost: Duration) -> anyhow::Result<(Duration, Duration, Duration)> {
    use mapaudit::tui::{App, draw};
    use ratatui::{Terminal, backend::TestBackend};
    let mut app = App::new(Duration::from_secs(1));
    let t = Instant::now();
    app.on_tick(m, cost);
    let app_tick = t.elapsed();
    let mut term = Terminal::new(TestBackend::new(FRAME_W, FRAME_H))?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        term.draw(|f| draw(f, &app, m))?;
        times.push(t.elapsed());
    }
    let first = times[0];
    times.sort();
    Ok((app_tick, times[times.len() / 2], first))
}

/// Page-apart words stand for map headers, each on its own page as
/// scattered heap maps are.
const LEN_STRIDE_WORDS: usize = 4096 / 8;

/// The target of `lengths`: `maps` words a page apart, holding their
/// index; prints where they start, then waits for stdin to close.
fn lengths_target(maps: usize) -> anyhow::Result<serde_json::Value> {
    use std::io::{BufRead as _, Write as _};
    let words: Vec<u64> = (0..maps * LEN_STRIDE_WORDS).map(|i| (i / LEN_STRIDE_WORDS) as u64).collect();
    println!("{}", words.as_ptr() as u64);
    std::io::stdout().flush()?;
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    std::hint::black_box(&words);
    std::process::exit(0)
}

/// The cost of one refresh's length sampling: `Lengths::pick` over 10,000
/// map rows, and one `process_vm_readv` batch of `maps` words in another
/// process (`lengths-target`), timed over `rounds`; every word read is checked.
#[allow(clippy::field_reassign_with_default, reason = "MapRow has fields private to the model: no struct literal here")]
fn lengths(maps: usize, rounds: usize) -> anyhow::Result<serde_json::Value> {
    use std::io::BufRead as _;
    use mapaudit::model::{MapId, MapRow, Ops, lengths::Lengths};
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["lengths-target", &maps.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).read_line(&mut line)?;
    let base: u64 = line.trim().parse().map_err(|_| anyhow::anyhow!("lengths-target said {line:?}"))?;
    let pid = child.id();
    let addrs: Vec<u64> = (0..maps as u64).map(|i| base + i * (LEN_STRIDE_WORDS as u64) * 8).collect();
    let mut read_ns = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let got = mapaudit::host::remote_mem::read_u64s(pid, &addrs);
        read_ns.push(t.elapsed().as_nanos() as f64);
        if got.iter().enumerate().any(|(i, v)| *v != Some(i as u64)) {
            let _ = child.kill();
            anyhow::bail!("process_vm_readv read wrong words: {got:?}");
        }
    }
    drop(child.stdin.take());
    let _ = child.wait();
    let rows: Vec<MapRow> = (0..10_000u64)
        .map(|i| {
            let mut r = MapRow::default();
            r.pid = 1;
            r.map = MapId { addr: 0xc000_0000 + i * 48, inst: 1 };
            r.ops = Ops { writes: i * 7 % 1000, ..Default::default() };
            r
        })
        .collect();
    let l = Lengths::new(maps);
    let mut pick_ns = Vec::new();
    for _ in 0..rounds.clamp(1, 50) {
        let t = Instant::now();
        std::hint::black_box(l.pick(rows.iter()));
        pick_ns.push(t.elapsed().as_nanos() as f64);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let read = median(read_ns);
    Ok(serde_json::json!({
        "maps": maps,
        "rounds": rounds,
        "read_us": read / 1e3,
        "read_ns_per_map": read / maps.max(1) as f64,
        "pick_10000_rows_us": median(pick_ns) / 1e3,
    }))
}
