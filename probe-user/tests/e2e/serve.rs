//! `mapaudit serve`: a real Prometheus server scrapes it and holds the
//! fixture's exact per-site counts; a fixture in a kubelet-named cgroup is
//! reported with its pod and container; series stay within --max-series
//! under 10,000 goroutines and maps; and the server survives scrapes during
//! attach/detach, a client leaving mid-response, 100 concurrent scrapes
//! and SIGTERM (clean exit, no programs left).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// One at a time: they watch the kernel's program list and bind ports.
static SERIAL: Mutex<()> = Mutex::new(());

/// `GET path` over HTTP/1.0 (no chunking, the server closes): status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap_or_else(|e| panic!("reading {path} from {addr}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status: {head}"));
    (status, body.to_string())
}

/// Starts `mapaudit serve ARGS --listen 127.0.0.1:0` and returns once it
/// serves, with the address it chose.
fn start_serve(args: &[&str], env: &[(&str, &str)]) -> (Proc, SocketAddr) {
    let mut c = mapaudit(&["serve", "--listen", "127.0.0.1:0", "--interval", "200ms"]);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let m = Proc::spawn(c);
    let line = m.err.wait_for("mapaudit to say it is serving", DEADLINE, |l| l.contains("serving"));
    let addr = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("{line}"));
    (m, addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}")))
}

/// The value of the sample of `name` whose labels include all of `labels`
/// (summed over the samples that match).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(name) else { continue };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            let v: f64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

/// Polls `f` until it returns Some, within the deadline: the server and
/// Prometheus update on their own clocks and announce nothing to wait on.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {DEADLINE:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The writers fixture's per-site truth: (site label, mutations there).
fn strs_sites(t: &Value) -> Vec<(String, u64)> {
    let file = t["file"].as_str().unwrap();
    let g = t["goroutines"].as_array().unwrap().iter().find(|g| g["name"] == "str").unwrap();
    let base = file.rsplit('/').next().unwrap();
    vec![
        (format!("main.strWriter {base}:{}", line_of(file, "// mapassign_faststr")), g["writes"].as_u64().unwrap()),
        (format!("main.strWriter {base}:{}", line_of(file, "// mapdelete_faststr")), g["deletes"].as_u64().unwrap()),
    ]
}

/// A loopback port nobody listens on now (for Prometheus's own address).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Prometheus server on loopback, killed when dropped.
struct Prometheus {
    _proc: Proc,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: mapaudit\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut c = Command::new("prometheus");
        c.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let p = Proc::spawn(c);
        poll("Prometheus to be ready", || {
            TcpStream::connect(addr).ok()?;
            (get(addr, "/-/ready").0 == 200).then_some(())
        });
        Self { _proc: p, addr }
    }

    /// An instant query's single value (None: no result yet).
    fn value(&self, promql: &str) -> Option<f64> {
        let q = percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC).to_string();
        let (status, body) = get(self.addr, &format!("/api/v1/query?query={q}"));
        assert_eq!(status, 200, "{promql}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let r = v["data"]["result"].as_array()?.first()?.clone();
        r["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` evaluates to exactly `want`.
    fn expect(&self, promql: &str, want: f64) {
        let mut last = None;
        let end = Instant::now() + DEADLINE;
        loop {
            last = self.value(promql).or(last);
            if last == Some(want) {
                return;
            }
            assert!(Instant::now() < end, "Prometheus: {promql} = {last:?}, want {want}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

root_test! {
    /// A real Prometheus (Debian's) scrapes `serve -- writers`: its query
    /// API returns the fixture's exact per-site counts and the self
    /// metrics (one process, duty cycle 1: exact, nothing lost).
    fn prometheus_scrapes_exact_site_counts(name) {
        let _g = SERIAL.lock();
        let dir = scratch(name);
        let (m, addr) = start_serve(&["--", s(&fixture("writers")), "-n", "20000", "-hold"], &[]);
        let t: Value = serde_json::from_str(&m.out.wait_for("the fixture's truth", DEADLINE, |l| l.starts_with('{'))).unwrap();
        let prom = Prometheus::start(&dir, addr);
        for (site, n) in strs_sites(&t) {
            prom.expect(&format!("sum(mapaudit_go_map_site_writes_total{{site=\"{site}\",estimate=\"exact\"}})"), n as f64);
        }
        prom.expect("mapaudit_attached_processes", 1.0);
        prom.expect("mapaudit_sampling_duty_cycle", 1.0);
        prom.expect("sum(mapaudit_lost_events_total)", 0.0);
        prom.expect("count(mapaudit_build_info)", 1.0);
        // Every write the fixture counted is among what the probes saw.
        let total: u64 = t["goroutines"].as_array().unwrap().iter().map(|g| g["writes"].as_u64().unwrap() + g["deletes"].as_u64().unwrap() + g["clears"].as_u64().unwrap()).sum();
        let hits = prom.value("mapaudit_probe_hits_total").unwrap();
        assert!(hits >= total as f64, "probe hits {hits} < {total} writes the fixture made");
        m.signal(Signal::SIGTERM);
        let out = m.wait();
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
    }

    /// A fixture in a cgroup named as the kubelet names a pod's container
    /// (systemd driver, containerd) with HOSTNAME set: the JSON report and
    /// the metrics' labels carry its pod UID, container id and pod name.
    fn kubelet_cgroup_attribution(name) {
        let _g = SERIAL.lock();
        let _ = scratch(name);
        let root = cgroup2_root();
        let stamp = format!("{:032x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() ^ u128::from(std::process::id()) << 64);
        let uid = format!("{}-{}-{}-{}-{}", &stamp[0..8], &stamp[8..12], &stamp[12..16], &stamp[16..20], &stamp[20..32]);
        let id = format!("{stamp}{stamp}");
        let pod = format!("api-{}", &stamp[24..32]);
        let dirs = [
            "kubepods.slice".to_string(),
            "kubepods-burstable.slice".to_string(),
            format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_")),
            format!("cri-containerd-{id}.scope"),
        ];
        let cg = Cgroups::create(&root, &dirs);
        let mut c = Command::new(fixture("writers"));
        c.args(["-n", "20000", "-hold", "-wait-signal"]).env("HOSTNAME", &pod);
        let w = Proc::spawn(c);
        w.err.wait_for("the fixture's READY line", DEADLINE, |l| l.starts_with("READY"));
        cg.enter(w.pid());
        let (m, addr) = start_serve(&["--pid", &w.pid().to_string()], &[]);
        w.go();
        let t: Value = serde_json::from_str(&w.out.wait_for("the fixture's truth", DEADLINE, |l| l.starts_with('{'))).unwrap();
        let (site, n) = strs_sites(&t)[0].clone();
        let labels = [("pod", pod.as_str()), ("pod_uid", uid.as_str()), ("container", id.as_str()), ("site", site.as_str())];
        poll("the site's exact count under the pod's labels", || {
            let (_, text) = get(addr, "/metrics");
            (sample(&text, "mapaudit_go_map_site_writes_total", &labels) == Some(n as f64)).then_some(())
        });
        let (status, body) = get(addr, "/report.json");
        assert_eq!(status, 200);
        let rep = parse_json(&body);
        let p = process(&rep, u64::from(w.pid()));
        assert_eq!(p["container"]["pod_uid"], uid.as_str(), "{}", p["container"]);
        assert_eq!(p["container"]["id"], id.as_str());
        assert_eq!(p["container"]["runtime"], "containerd");
        assert_eq!(p["container"]["pod"], pod.as_str());
        m.signal(Signal::SIGTERM);
        assert_eq!(m.wait().code(), Some(0));
        drop(w);
        drop(cg);
    }

    /// 10,000 requests, each on its own connection goroutine with its own
    /// map: at most --max-series labelled series, the rest counted as
    /// folded; no label is a goroutine id or map address.
    fn cardinality_is_bounded(name) {
        let _g = SERIAL.lock();
        let _ = scratch(name);
        const MAX: usize = 4;
        let (m, addr) = start_serve(&["--max-series", &MAX.to_string(), "--", s(&fixture("churn")), "-n", "10000"], &[]);
        let t: Value = serde_json::from_str(&m.out.wait_for("the fixture's truth", DEADLINE, |l| l.starts_with('{'))).unwrap();
        assert_eq!(t["requests"], 10000, "{t}");
        m.err.wait_for("the command's exit", DEADLINE, |l| l.contains("command exited"));
        let (_, text) = get(addr, "/metrics");
        let families = ["mapaudit_go_map_writes_total{", "mapaudit_go_map_site_writes_total{", "mapaudit_go_map_overlapping_writes_total{", "mapaudit_bpf_map_syscall_writes_total{"];
        let series: Vec<&str> = text.lines().filter(|l| families.iter().any(|f| l.starts_with(f))).collect();
        assert_eq!(series.len(), MAX, "{text}");
        assert_eq!(sample(&text, "mapaudit_series", &[]), Some(MAX as f64), "{text}");
        assert!(sample(&text, "mapaudit_series_folded_total", &[]).unwrap() > 0.0, "{text}");
        for l in &series {
            assert!(!l.contains("goid") && !l.contains("tid=") && !l.contains("addr"), "{l}");
        }
        m.signal(Signal::SIGTERM);
        assert_eq!(m.wait().code(), Some(0));
    }

    /// Scrapes while processes come and go (attach, detach), a client that
    /// leaves mid-response, 100 concurrent scrapes (all answered within
    /// the deadline), then SIGTERM: exit 0 and every program unloaded.
    fn survives_scrapes_and_sigterm(name) {
        let _g = SERIAL.lock();
        let _ = scratch(name);
        let bin = fixture("writers");
        let (m, addr) = start_serve(&["--exe", s(&bin)], &[]);
        let ids = prog_ids_of(m.pid());
        assert!(!ids.is_empty(), "serve holds its programs");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let scraper = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, body) = get(addr, "/metrics");
                    assert_eq!(status, 200);
                    assert!(body.ends_with("# EOF\n"), "{body}");
                    n += 1;
                }
                n
            })
        };
        for _ in 0..3 {
            let out = spawn_fixture(&bin, &["-n", "2000"]).wait();
            out.assert_success("writers");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(scraper.join().unwrap() > 0);
        // A client that reads a little and leaves.
        for _ in 0..5 {
            let mut c = TcpStream::connect(addr).unwrap();
            write!(c, "GET /report.json HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = [0u8; 16];
            let _ = c.read(&mut buf).unwrap();
            drop(c);
        }
        let start = Instant::now();
        let scrapes: Vec<_> = (0..100).map(|_| std::thread::spawn(move || get(addr, "/metrics"))).collect();
        for h in scrapes {
            let (status, body) = h.join().unwrap();
            assert_eq!(status, 200);
            assert!(body.contains("mapaudit_attached_probes"));
        }
        assert!(start.elapsed() < DEADLINE, "100 scrapes took {:?}", start.elapsed());
        assert_eq!(get(addr, "/healthz"), (200, "ok\n".to_string()));
        m.signal(Signal::SIGTERM);
        let out = m.wait();
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        let end = Instant::now() + DEADLINE;
        while still_loaded(&ids) > 0 {
            assert!(Instant::now() < end, "programs still loaded after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

user_test! {
    /// A taken --listen address is a clear error (exit 2) before anything
    /// is attached.
    fn taken_address_is_refused(_name) {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let out = run(&["serve", "--listen", &addr, "--pid", "1"]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot listen on") && err.contains(&addr), "{err}");
    }
}

fn parse_json(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_valid_report(&v);
    v
}

/// Where the cgroup v2 hierarchy is mounted (unified or hybrid).
fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap()))
        })
        .expect("a cgroup2 mount")
}

/// Nested cgroups, removed (their processes moved back to the root) when dropped.
struct Cgroups {
    root: PathBuf,
    made: Vec<PathBuf>,
}

impl Cgroups {
    fn create(root: &Path, names: &[String]) -> Self {
        let mut made = Vec::new();
        let mut at = root.to_path_buf();
        for n in names {
            at.push(n);
            if !at.exists() {
                std::fs::create_dir(&at).unwrap_or_else(|e| panic!("mkdir {}: {e}", at.display()));
                made.push(at.clone());
            }
        }
        Self { root: root.to_path_buf(), made }
    }

    fn enter(&self, pid: u32) {
        let leaf = self.made.last().expect("a fresh leaf");
        std::fs::write(leaf.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for d in self.made.iter().rev() {
            if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for p in procs.lines() {
                    let _ = std::fs::write(self.root.join("cgroup.procs"), p);
                }
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

user_test! {
    /// deploy/kubernetes/ validates offline against the Kubernetes schemas
    /// (PyPI kubernetes-validate, strict: no unknown fields). The PodMonitor
    /// is a Prometheus Operator CRD the tool has no schema for: it is the
    /// only manifest allowed to go unchecked, and its selector and port
    /// must name the DaemonSet's.
    fn kubernetes_manifests_validate(_name) {
        let root = fixtures::workspace_root();
        let dir = root.join("deploy/kubernetes");
        let python = root.join("target/python");
        assert!(python.join("kubernetes_validate").is_dir(), "kubernetes-validate is missing: run `cargo xtask setup`");
        let manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("prometheus-scrape-config.yaml"))
            .collect();
        assert!(manifests.len() >= 3, "{manifests:?}");
        let out = Command::new("python3")
            .args(["-m", "kubernetes_validate", "--strict"])
            .args(&manifests)
            .env("PYTHONPATH", &python)
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{said}");
        for kind in ["daemonset/mapaudit", "service/mapaudit", "namespace/mapaudit"] {
            assert!(said.contains(&format!("passed for resource {kind}")), "{kind}: {said}");
        }
        let unchecked: Vec<&str> = said.lines().filter(|l| l.contains("Couldn't find schema")).collect();
        assert!(unchecked.iter().all(|l| l.contains("kind PodMonitor")), "{said}");
        let pm = std::fs::read_to_string(dir.join("podmonitor.yaml")).unwrap();
        let ds = std::fs::read_to_string(dir.join("daemonset.yaml")).unwrap();
        assert!(pm.contains("app.kubernetes.io/name: mapaudit") && ds.contains("app.kubernetes.io/name: mapaudit"));
        assert!(pm.contains("- port: metrics") && ds.contains("- name: metrics"));
        // The Service's selector too, and the scrape config's port name.
        let svc = std::fs::read_to_string(dir.join("service.yaml")).unwrap();
        assert!(svc.contains("targetPort: metrics"));
    }
}
