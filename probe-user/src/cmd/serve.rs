//! `mapaudit serve`: audit like `top` (same targets, same 5% budget when
//! system-wide) and serve the results over HTTP for Prometheus:
//! `/metrics` (OpenMetrics text, `output::metrics`), `/report.json` (the
//! current `mapaudit/v1` report) and `/healthz`.
//!
//! The session loop owns the model; at each refresh it renders the
//! exposition once, and the HTTP side (hyper, on the same tokio runtime)
//! only hands out the latest rendering: a scrape never waits for, or slows,
//! the probes' collection, and a hundred concurrent scrapes cost a hundred
//! copies. The report is larger and rarely asked for: it is built at the
//! next refresh after a request asks for it, and the request waits for
//! that one. Connections are bounded in number and in how long their
//! headers may take.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::config::{Serve, Target};
use crate::output::metrics::{Metrics, Refresh};
use crate::output::report;
use crate::session::Session;
use crate::session::driver::{Driver, SessionEvent, TickWork};

/// Connections served at once; further ones wait to be accepted.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The OpenMetrics text format (prometheus-client writes only this; every
/// Prometheus since 2.5 asks for it and parses it).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a /report.json request waits for the next refresh to build it.
const REPORT_WAIT: Duration = Duration::from_secs(30);

/// The latest rendering, handed to every request.
#[derive(Default)]
struct Latest {
    metrics: Bytes,
    report: Bytes,
    /// Reports built so far.
    reports: u64,
}

/// What the session loop and the HTTP side share.
struct Shared {
    latest: RwLock<Latest>,
    /// A request waits for a report: build one at the next refresh.
    report_wanted: AtomicBool,
    /// Bumped at every refresh.
    refreshed: tokio::sync::watch::Sender<u64>,
}

pub async fn run(args: Serve) -> anyhow::Result<i32> {
    // Bind first: a taken port fails before anything is attached.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        eprintln!("mapaudit: warning: serving on {addr}, reachable from other hosts (--listen)");
    }
    let target = &args.target;
    let (mut s, duty) = Session::start(target, &args.probe, None)?;
    let mut driver = Driver::new(&s, duty, args.interval, TickWork::Refresh, None)?;
    for w in &s.warnings {
        eprintln!("mapaudit: warning: {w}");
    }
    let mut metrics = Metrics::new(args.metrics.clone());
    let latest = Arc::new(Shared {
        latest: RwLock::new(Latest::default()),
        report_wanted: AtomicBool::new(false),
        refreshed: tokio::sync::watch::Sender::new(0),
    });
    render(&mut s, &driver, &mut metrics, &latest);
    let server = tokio::spawn(accept_loop(listener, latest.clone()));
    eprintln!("mapaudit: serving {} on http://{addr} (/metrics, /report.json, /healthz)", describe(target, s.child_pid()));

    let code = loop {
        match driver.next(&mut s).await? {
            SessionEvent::Tick { .. } => render(&mut s, &driver, &mut metrics, &latest),
            // The target is gone: its final counts stay served until
            // SIGINT/SIGTERM, so the last scrape sees all of them.
            SessionEvent::TargetExited(pid) => {
                render(&mut s, &driver, &mut metrics, &latest);
                eprintln!("mapaudit: pid {pid} exited; serving its final counts until SIGINT/SIGTERM");
            }
            SessionEvent::ChildExited(status) => {
                render(&mut s, &driver, &mut metrics, &latest);
                eprintln!("mapaudit: the command exited ({}); serving its final counts until SIGINT/SIGTERM", status?);
            }
            SessionEvent::Deadline => {}
            // A stop asked for is a clean exit for a service.
            SessionEvent::Signal(_) => break 0,
        }
    };
    server.abort();
    driver.finish(&mut s, None)?;
    s.terminate_child(Duration::from_secs(5)).await;
    eprintln!("mapaudit: stopped");
    Ok(code)
}

/// Brings the metrics (and, when asked for, the report) up to the model.
fn render(s: &mut Session, driver: &Driver, metrics: &mut Metrics, shared: &Shared) {
    let duty = driver.duty();
    metrics.update(
        &s.model,
        &Refresh {
            scale: duty.map(|d| d.scale()),
            duty_cycle: duty.map_or(1.0, |d| d.effective_duty()),
            attached_probes: s.probes.attached_count(),
        },
    );
    let text = match metrics.encode() {
        Ok(t) => Bytes::from(t),
        Err(e) => {
            log::error!("encoding the metrics: {e}");
            return;
        }
    };
    let json = shared.report_wanted.swap(false, Ordering::AcqRel).then(|| {
        let started = humantime::format_rfc3339_seconds(s.started_at).to_string();
        let mut rep = report::build(&s.model, &started, s.elapsed().as_secs_f64());
        if let Some(d) = duty {
            report::apply_sampling(&mut rep, d);
        }
        serde_json::to_vec(&rep).map(Bytes::from).unwrap_or_default()
    });
    {
        let mut l = shared.latest.write().unwrap_or_else(|p| p.into_inner());
        l.metrics = text;
        if let Some(json) = json {
            l.report = json;
            l.reports += 1;
        }
    }
    shared.refreshed.send_modify(|n| *n += 1);
}

/// A report built after the request came (or, should the session end
/// first or the refresh take longer than `REPORT_WAIT`, the last one).
async fn fresh_report(shared: &Shared) -> Bytes {
    let mut refreshed = shared.refreshed.subscribe();
    let seen = shared.latest.read().unwrap_or_else(|p| p.into_inner()).reports;
    let wait = async {
        loop {
            shared.report_wanted.store(true, Ordering::Release);
            if refreshed.changed().await.is_err() {
                return;
            }
            if shared.latest.read().unwrap_or_else(|p| p.into_inner()).reports > seen {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(REPORT_WAIT, wait).await;
    shared.latest.read().unwrap_or_else(|p| p.into_inner()).report.clone()
}

async fn accept_loop(listener: tokio::net::TcpListener, latest: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: pass, and let the
                // connections being served finish first.
                log::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let latest = latest.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req| {
                let latest = latest.clone();
                async move { Ok::<_, Infallible>(respond(&latest, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            // A client gone mid-response is its own business.
            if let Err(e) = conn.await {
                log::debug!("HTTP connection: {e}");
            }
        });
    }
}

async fn respond(shared: &Shared, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        if let Ok(v) = kind.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", Bytes::from_static(b"GET only\n"));
    }
    match req.uri().path() {
        "/metrics" => {
            let text = shared.latest.read().unwrap_or_else(|p| p.into_inner()).metrics.clone();
            reply(StatusCode::OK, OPENMETRICS, text)
        }
        "/report.json" => reply(StatusCode::OK, "application/json", fresh_report(shared).await),
        "/healthz" => reply(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        "/" => reply(
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"mapaudit serve: /metrics (OpenMetrics), /report.json (mapaudit/v1), /healthz\n"),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", Bytes::from_static(b"not found\n")),
    }
}

fn describe(t: &Target, child: Option<u32>) -> String {
    match t {
        Target::Pid(p) => format!("pid {p}"),
        Target::Exe(e) => format!("every process of {}", e.display()),
        Target::Command(c) => format!("`{}` (pid {})", c.join(" "), child.unwrap_or(0)),
        Target::SystemWide => "every Go process on this node".into(),
    }
}
