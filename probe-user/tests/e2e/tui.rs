//! Root end-to-end test of the live view: the real binary in a real terminal
//! (tmux), against the `writers` fixture while it writes. Keys go in with
//! `send-keys`, the screen comes back with `capture-pane`.


use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// Kills the tmux session however the test ends (the fixture's `Proc`
/// kills itself).
struct Cleanup {
    session: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.session]).output();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("running tmux (is it installed?)");
    assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(session: &str) -> Vec<String> {
    tmux(&["capture-pane", "-p", "-t", session]).lines().map(str::to_string).collect()
}

/// Polls the screen until `ok` holds; fails with the last screen after
/// `secs`. The terminal announces nothing: what it shows is the event.
fn wait_for(session: &str, what: &str, secs: u64, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = screen(session);
        if ok(&s) {
            return s;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; the screen:\n{}", s.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Types `keys`. A lone Escape followed at once by a key would read as
/// Alt+key: callers wait for the screen to show an Escape's effect before
/// the next key.
fn keys(session: &str, keys: &[&str]) {
    for k in keys {
        tmux(&["send-keys", "-t", session, k]);
    }
}

/// The sort the footer names (`sort GOID▼`).
fn footer_sort(s: &[String]) -> Option<String> {
    let l = s.last()?;
    let at = l.find("sort ")?;
    l[at..].split_whitespace().nth(1).map(str::to_string)
}

/// The table under the header line containing `header`: (header, rows).
fn table(s: &[String], header: &str) -> Option<(String, Vec<String>)> {
    let at = s.iter().position(|l| l.contains(header))?;
    let rows = s[at + 1..].iter().take_while(|l| !l.trim().is_empty()).cloned().collect();
    Some((s[at].clone(), rows))
}

/// The text of the right-aligned numeric column titled `title` in `row`
/// (numbers end where their header, with its sort arrow, ends).
fn numeric_cell(header: &str, row: &str, title: &str) -> String {
    let h: Vec<char> = header.chars().collect();
    let t: Vec<char> = title.chars().collect();
    let start = (0..h.len()).find(|&i| h[i..].starts_with(&t)).unwrap_or_else(|| panic!("{title} not in {header}"));
    let mut end = start + t.len();
    if matches!(h.get(end), Some('▲' | '▼')) {
        end += 1;
    }
    let r: Vec<char> = row.chars().collect();
    let upto: String = r[..end.min(r.len())].iter().collect();
    upto.split_whitespace().last().unwrap_or("").to_string()
}

fn first_column_numbers(rows: &[String]) -> Vec<u64> {
    rows.iter().filter_map(|r| r.split_whitespace().next()?.parse().ok()).collect()
}

root_test! {
    fn top_live_view_in_a_terminal(_) {
        // A large -n keeps it writing for the whole test; -wait-signal holds the
        // writes until the view is attached, so every worker is seen writing.
        let mut fixture = spawn_waiting(&fixture("writers"), &["-n", "1000000000"]);
        let pid = fixture.pid();

        let session = format!("mapaudit-tui-{}", std::process::id());
        let _cleanup = Cleanup { session: session.clone() };
        // After mapaudit exits, the shell reports its status and the terminal
        // modes: raw mode must be off again (icanon, echo).
        let cmd = format!(
            "{} top --pid {pid}; echo EXITED=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; sleep 600",
            mapaudit_bin()
        );
        tmux(&["new-session", "-d", "-x", "160", "-y", "45", "-s", &session, &cmd]);

        wait_for(&session, "the view, attached", 20, |s| {
            s.first().is_some_and(|l| l.contains("mapaudit") && l.contains(&format!("pid {pid}")) && l.contains("1 attached"))
                && s.iter().any(|l| l.contains("GOID"))
        });
        assert_eq!(tmux(&["display", "-p", "-t", &session, "#{alternate_on}"]).trim(), "1", "the view is on the alternate screen");
        fixture.go();

        // Goroutines: the six workers, each writing (non-zero writes/s), named
        // by where main created them.
        let s = wait_for(&session, "six goroutines writing", 20, |s| {
            table(s, "GOID").is_some_and(|(h, rows)| {
                rows.iter().filter(|r| r.contains("main.main main.go:") && numeric_cell(&h, r, "WRITES/S") != "0").count() >= 6
            })
        });
        let (header, rows) = table(&s, "GOID").expect("goroutine table");
        for col in ["GOID", "PROCESS", "CREATED BY", "WRITES/S▼", "TOTAL", "MAPS WRITTEN", "THREAD"] {
            assert!(header.contains(col), "{col} in {header}");
        }
        assert!(rows.iter().all(|r| r.contains(&format!("{pid} writers"))), "{rows:#?}");
        assert!(rows.iter().any(|r| r.contains("map[string][]string")), "{rows:#?}");

        // Sorting: cycle to GOID (numbers start biggest first), then reverse.
        // Each `s` moves to the next column: wait for the footer to change
        // before the next press.
        for _ in 0..7 {
            let before = footer_sort(&screen(&session));
            if before.as_deref() == Some("GOID▼") {
                break;
            }
            keys(&session, &["s"]);
            wait_for(&session, "the sort to move on", 10, |s| footer_sort(s) != before);
        }
        let s = wait_for(&session, "sort by GOID", 5, |s| s.iter().any(|l| l.contains("GOID▼")));
        let desc = first_column_numbers(&table(&s, "GOID").expect("table").1);
        assert!(desc.len() >= 6 && desc.windows(2).all(|w| w[0] > w[1]), "GOID▼ not descending: {desc:?}");
        assert!(s.last().is_some_and(|l| l.contains("sort GOID▼")), "footer shows the sort: {:?}", s.last());
        keys(&session, &["S"]);
        let s = wait_for(&session, "sort by GOID reversed", 5, |s| s.iter().any(|l| l.contains("GOID▲")));
        let asc = first_column_numbers(&table(&s, "GOID").expect("table").1);
        assert!(asc.windows(2).all(|w| w[0] < w[1]), "GOID▲ not ascending: {asc:?}");
        assert_ne!(asc.first(), desc.first(), "reversing changed the first row");
        let mut rev = desc.clone();
        rev.reverse();
        assert_eq!(asc, rev);

        // Maps: the fixture's map types, map[string][]string among them.
        keys(&session, &["3"]);
        let s = wait_for(&session, "the maps view", 10, |s| {
            table(s, "ADDRESS").is_some_and(|(_, rows)| rows.iter().any(|r| r.contains("map[string][]string")))
        });
        let (header, rows) = table(&s, "ADDRESS").expect("maps table");
        assert!(header.contains("TYPE") && header.contains("WRITERS") && header.contains("OVERLAPS"), "{header}");
        for t in ["map[string][]string", "map[int64]int", "map[[2]int]int", "map[string]int", "map[int32]int"] {
            assert!(rows.iter().any(|r| r.contains(t)), "{t} in {rows:#?}");
        }
        // The shared map has two writers.
        let shared = rows.iter().find(|r| r.contains("map[string]int ")).expect("shared map row");
        assert_eq!(numeric_cell(&header, shared, "WRITERS"), "2", "{shared}");

        // Filter: only the map[int64]int row stays.
        keys(&session, &["/", "i", "n", "t", "6", "4", "Enter"]);
        let s = wait_for(&session, "the filter applied", 10, |s| {
            s.last().is_some_and(|l| l.contains("filter: int64"))
                && table(s, "ADDRESS").is_some_and(|(_, rows)| !rows.iter().any(|r| r.contains("map[string][]string")))
        });
        let (_, rows) = table(&s, "ADDRESS").expect("maps table");
        assert!(!rows.is_empty(), "the filter left no rows");
        assert!(rows.iter().all(|r| r.contains("int64")), "{rows:#?}");
        // Esc drops it: every map is back.
        keys(&session, &["Escape"]);
        wait_for(&session, "the filter cleared", 10, |s| {
            table(s, "ADDRESS").is_some_and(|(_, rows)| rows.len() >= 5) && !s.iter().any(|l| l.contains("filter: int64"))
        });

        // Classes (7): maps by type and site, goroutines by creation site.
        // The fixture's six workers come from six `go` statements: six
        // classes of one goroutine; the shared map is one instance written
        // by two of them.
        keys(&session, &["7"]);
        let s = wait_for(&session, "the classes view", 10, |s| {
            table(s, "CLASS").is_some_and(|(_, rows)| {
                rows.iter().any(|r| r.contains("map[string]int at"))
                    && rows.iter().filter(|r| r.contains("goroutines") && r.contains("main.main main.go:")).count() >= 6
            })
        });
        let (header, rows) = table(&s, "CLASS").expect("classes table");
        for col in ["KIND", "CLASS", "INSTANCES", "WRITES/S", "TOTAL", "PER INST.", "SHARED"] {
            assert!(header.contains(col), "{col} in {header}");
        }
        let shared = rows.iter().find(|r| r.contains("map[string]int at")).expect("shared map class");
        assert_eq!(numeric_cell(&header, shared, "INSTANCES"), "1", "{shared}");
        assert_eq!(numeric_cell(&header, shared, "SHARED"), "1", "{shared}");
        let workers: Vec<&String> = rows.iter().filter(|r| r.contains("goroutines") && r.contains("main.main main.go:")).collect();
        assert_eq!(workers.len(), 6, "{rows:#?}");
        assert!(workers.iter().all(|r| numeric_cell(&header, r, "INSTANCES") == "1"), "{workers:#?}");

        // q: mapaudit exits with 0, off the alternate screen, raw mode off, no
        // trace of the view on the normal screen.
        keys(&session, &["q"]);
        let s = wait_for(&session, "mapaudit to exit and the shell to report", 20, |s| {
            s.iter().any(|l| l.contains("EXITED=")) && s.iter().any(|l| l.contains("icanon"))
        });
        assert!(s.iter().any(|l| l.trim() == "EXITED=0"), "{}", s.join("\n"));
        assert!(s.iter().any(|l| l.trim() == "icanon echo"), "terminal left in raw mode:\n{}", s.join("\n"));
        assert!(!s.iter().any(|l| l.contains("GOID") || l.contains("ADDRESS")), "view left on the screen:\n{}", s.join("\n"));
        assert_eq!(tmux(&["display", "-p", "-t", &session, "#{alternate_on}"]).trim(), "0", "alternate screen left");
        let still_running = std::fs::read_dir("/proc").expect("/proc").flatten().any(|e| {
            let Ok(c) = std::fs::read(e.path().join("cmdline")) else { return false };
            let args: Vec<String> = c.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            args.first().is_some_and(|a| a == mapaudit_bin()) && args.iter().any(|a| *a == pid.to_string())
        });
        assert!(!still_running, "mapaudit top is still running");
        // The fixture was only observed: it still runs.
        assert!(fixture.running(), "quitting the view must not stop a --pid target");
    }
}

/// The TOTAL cells of the table under `header`, as numbers.
fn totals(s: &[String], header: &str) -> Vec<u64> {
    let (h, rows) = table(s, header).unwrap_or_else(|| panic!("no {header} table:\n{}", s.join("\n")));
    rows.iter().filter_map(|r| numeric_cell(&h, r, "TOTAL").parse().ok()).collect()
}

root_test! {
    /// The view's numbers against the fixture's truth and a report of the
    /// same run (`record --pid` on the same process), then every view,
    /// drill-down, pause, the refresh interval and help, each synchronised
    /// on what the screen shows.
    fn top_numbers_views_and_keys_against_truth_and_report(name) {
        // 4 workers, each: 3000 writes, every third key deleted (1000), one clear.
        const PER_WORKER: u64 = 3000 + 1000 + 1;
        let mut fx = spawn_waiting(&fixture("exact"), &["-n", "3000", "-hold"]);
        let pid = fx.pid();
        let json = scratch(name).join("report.json");
        let (rec, _) = start_mapaudit(&["record", "--no-bpf-maps", "--pid", &pid.to_string(), "--json", s(&json)]);

        let session = format!("mapaudit-tui2-{}", std::process::id());
        let _cleanup = Cleanup { session: session.clone() };
        let cmd = format!("{} top --no-bpf-maps --interval 250ms --pid {pid}; echo EXITED=$?; sleep 600", mapaudit_bin());
        tmux(&["new-session", "-d", "-x", "160", "-y", "45", "-s", &session, &cmd]);
        wait_for(&session, "the view, attached", 20, |s| {
            s.first().is_some_and(|l| l.contains("1 attached")) && s.iter().any(|l| l.contains("GOID"))
        });
        fx.go();
        let truth_line = fx.out.wait_for("the fixture's truth", DEADLINE, |l| l.starts_with('{'));
        let t: serde_json::Value = serde_json::from_str(&truth_line).unwrap();
        assert_eq!(t["writes"], 4 * 3000, "{t}");

        // Goroutines (view 1): the four workers, each with its exact total.
        let s = wait_for(&session, "four goroutines with their totals", 20, |s| {
            totals(s, "GOID").iter().filter(|&&n| n == PER_WORKER).count() == 4
        });
        let (h, rows) = table(&s, "GOID").unwrap();
        let mut on_screen: Vec<u64> = rows
            .iter()
            .filter(|r| numeric_cell(&h, r, "TOTAL") == PER_WORKER.to_string())
            .filter_map(|r| r.split_whitespace().next()?.parse().ok())
            .collect();
        on_screen.sort();

        // The report of the same run says the same, and the fixture's truth.
        rec.signal(Signal::SIGINT);
        assert_eq!(rec.wait().code(), Some(130));
        let r = read_json(&json);
        for f in ["writes", "deletes", "clears"] {
            assert_eq!(r["totals"][f], t[f], "totals.{f}");
        }
        let p = process(&r, u64::from(pid));
        let op_total = |g: &serde_json::Value| ["writes", "deletes", "clears"].iter().map(|f| g[f].as_u64().unwrap()).sum::<u64>();
        let mut in_report: Vec<u64> =
            p["goroutines"].as_array().unwrap().iter().filter(|g| op_total(g) == PER_WORKER).map(|g| g["goid"].as_u64().unwrap()).collect();
        in_report.sort();
        assert_eq!(on_screen, in_report, "the same goroutines on screen and in the report");
        let all = t["writes"].as_u64().unwrap() + t["deletes"].as_u64().unwrap() + t["clears"].as_u64().unwrap();

        // Threads (view 2): every operation on some thread.
        keys(&session, &["2"]);
        let s = wait_for(&session, "the threads view", 10, |s| table(s, "GOROUTINES SEEN").is_some());
        assert_eq!(totals(&s, "GOROUTINES SEEN").iter().sum::<u64>(), all, "{}", s.join("\n"));
        // Maps (view 3): four maps, each its worker's total.
        keys(&session, &["3"]);
        let s = wait_for(&session, "the maps view", 10, |s| table(s, "ADDRESS").is_some());
        assert_eq!(totals(&s, "ADDRESS"), vec![PER_WORKER; 4], "{}", s.join("\n"));
        // Sites (view 4): the write, delete and clear lines of main.worker.
        keys(&session, &["4"]);
        let s = wait_for(&session, "the sites view", 10, |s| table(s, "FUNCTION FILE:LINE").is_some());
        let mut sites = totals(&s, "FUNCTION FILE:LINE");
        sites.sort();
        assert_eq!(sites, vec![4, 4000, 12000], "{}", s.join("\n"));
        let (_, rows) = table(&s, "FUNCTION FILE:LINE").unwrap();
        assert!(rows.iter().all(|r| r.contains("main.worker main.go:")), "{rows:#?}");
        // BPF maps (view 5): its columns (bpf(2) counting is off here).
        keys(&session, &["5"]);
        let s = wait_for(&session, "the BPF maps view", 10, |s| table(s, "MAP ID").is_some());
        let (h, _) = table(&s, "MAP ID").unwrap();
        assert!(h.contains("UPDATES") && h.contains("DELETES"), "{h}");
        // Findings (view 6): none, as in the report.
        assert_eq!(r["findings"], serde_json::json!([]));
        keys(&session, &["6"]);
        let s = wait_for(&session, "the findings view", 10, |s| table(s, "KIND").is_some());
        let (h, rows) = table(&s, "KIND").unwrap();
        assert!(h.contains("GOROUTINES") && h.contains("COUNT"), "{h}");
        assert!(!rows.iter().any(|r| r.contains("overlapping") || r.contains("shared")), "{rows:#?}");

        // Drill-down: a goroutine's detail names its map and site.
        keys(&session, &["1"]);
        wait_for(&session, "the goroutines view", 10, |s| table(s, "GOID").is_some());
        keys(&session, &["Enter"]);
        let s = wait_for(&session, "the detail", 10, |s| s.iter().any(|l| l.contains("detail (Enter/Esc closes)")));
        let text = s.join("\n");
        assert!(text.contains("map[int]int") && text.contains("main.worker main.go:"), "{text}");
        keys(&session, &["Escape"]);
        wait_for(&session, "the detail closed", 10, |s| !s.iter().any(|l| l.contains("detail (Enter/Esc closes)")));

        // Pause and resume, as the footer says.
        keys(&session, &["p"]);
        wait_for(&session, "paused", 10, |s| s.last().is_some_and(|l| l.contains("p resume")));
        keys(&session, &["p"]);
        wait_for(&session, "resumed", 10, |s| s.last().is_some_and(|l| l.contains("p pause")));
        // The refresh interval: 250ms, one step slower, then two faster.
        assert!(screen(&session).last().is_some_and(|l| l.contains("+/- 250ms")));
        keys(&session, &["+"]);
        wait_for(&session, "500ms", 10, |s| s.last().is_some_and(|l| l.contains("+/- 500ms")));
        keys(&session, &["-"]);
        wait_for(&session, "250ms", 10, |s| s.last().is_some_and(|l| l.contains("+/- 250ms")));
        keys(&session, &["-"]);
        wait_for(&session, "100ms", 10, |s| s.last().is_some_and(|l| l.contains("+/- 100ms")));
        // Help names the keys and the interval now in force.
        keys(&session, &["?"]);
        let s = wait_for(&session, "help", 10, |s| s.iter().any(|l| l.contains("refresh less / more often (now 100ms)")));
        assert!(s.iter().any(|l| l.contains("pause the view (the kernel keeps counting)")), "{}", s.join("\n"));
        keys(&session, &["Escape"]);
        wait_for(&session, "help closed", 10, |s| !s.iter().any(|l| l.contains("refresh less / more often")));

        keys(&session, &["q"]);
        let s = wait_for(&session, "mapaudit to exit", 20, |s| s.iter().any(|l| l.contains("EXITED=")));
        assert!(s.iter().any(|l| l.trim() == "EXITED=0"), "{}", s.join("\n"));
        assert!(fx.running(), "the view only observed the process");
        fx.go();
        assert!(fx.wait().status.success());
    }
}
