//! Drawing: renders the model as the app says. Reads both, mutates neither,
//! and never touches the kernel side.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Scrollbar, ScrollbarOrientation, ScrollbarState, Sparkline, Table,
    TableState, Tabs,
};

use super::rows::{
    self, Alert, Kind, RowData, fmt_addr, fmt_approx, fmt_count, fmt_rate, map_type, process_name, site_name,
};
use super::{App, RowId, RowList, Tab, row_list};
use crate::model::classes::{ClassKind, ClassRow};
use crate::model::{FindingKind, Location, Model, Ops};

const ACCENT: Color = Color::Cyan;

fn key_style() -> Style {
    Style::new().fg(ACCENT).add_modifier(Modifier::BOLD)
}

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// `s` cut to `w` characters, with an ellipsis when cut.
fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else if w == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(w - 1).collect();
        out.push('…');
        out
    }
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn fmt_interval(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

fn fmt_us(us: u64) -> String {
    if us >= 1000 { format!("{:.1}ms", us as f64 / 1000.0) } else { format!("{us}µs") }
}

/// Draws the whole view.
pub fn draw(frame: &mut Frame, app: &App, model: &Model) {
    let area = frame.area();
    // A detail pane on a small terminal needs the sparklines' rows more.
    let narrow_detail = app.detail && area.width < 140 && area.height < 40;
    let spark_h = if area.height >= 20 && !narrow_detail { 3 } else { 0 };
    let [header, tabs, spark, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(spark_h),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let rows = row_list(app.tab, model, app);
    let sel = app.selection_in(&rows, model);
    let selected_row = sel.map(|i| rows.row(model, i));
    let selected = selected_row.as_ref();

    draw_header(frame, header, app, model);
    draw_tabs(frame, tabs, app, model);
    if spark_h > 0 {
        draw_sparklines(frame, spark, app, model, selected);
    }
    let (table_area, detail_area) = if !app.detail {
        (body, None)
    } else if body.width >= 140 {
        let [t, d] = Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(body);
        (t, Some(d))
    } else {
        let [t, d] = Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);
        (t, Some(d))
    };
    draw_table(frame, table_area, app, model, &rows, sel);
    if let Some(d) = detail_area {
        draw_detail(frame, d, app, model, selected);
    }
    draw_footer(frame, footer, app);
    if app.help {
        draw_help(frame, area, app, model);
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, model: &Model) {
    let st = &app.status;
    let mut right = Vec::new();
    if let Some(e) = &st.ended {
        right.push(Span::styled(format!(" {e} "), Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)));
    }
    if st.attached > 0 {
        right.push(Span::styled(format!(" {} attached", st.attached), Style::new().fg(Color::Green)));
    } else {
        right.push(Span::styled(" NOT ATTACHED ", Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD)));
    }
    right.push(Span::raw("  "));
    right.push(Span::styled(fmt_rate(model.agg.total_rate), bold()));
    right.push(Span::raw(" writes/s "));
    let lost = model.lost_total();
    if lost > 0 {
        right.push(Span::styled(
            format!(" LOST {} ", fmt_count(lost)),
            Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    } else {
        right.push(Span::styled(" lost 0 ", dim()));
    }
    if let Some(d) = model.sampling {
        right.push(Span::styled(
            format!(" SAMPLED {:.0}% ", d * 100.0),
            Style::new().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD),
        ));
    }
    if app.paused {
        right.push(Span::styled(" PAUSED ", Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD)));
    }
    let right = Line::from(right);
    // The status on the right wins when both do not fit: the left side
    // drops whole pieces, least important last, and cuts the target name.
    let rw = (right.width() as u16).min(area.width);
    let room = usize::from(area.width - rw).saturating_sub(1);
    let brand = Span::styled(" mapaudit ", Style::new().fg(Color::Black).bg(ACCENT).add_modifier(Modifier::BOLD));
    let mut used = brand.width();
    let mut left = vec![brand];
    if used < room {
        let t = fit(&format!(" {}", st.target), room - used);
        used += t.chars().count();
        left.push(Span::styled(t, bold()));
    }
    let procs = model.processes.len();
    for piece in [
        format!("  {}", hms(st.elapsed.max(model.elapsed))),
        format!("  {procs} proc{}", if procs == 1 { "" } else { "s" }),
    ] {
        let w = piece.chars().count();
        if used + w > room {
            break;
        }
        used += w;
        left.push(Span::raw(piece));
    }
    let left = Line::from(left);
    let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(rw)]).areas(area);
    frame.render_widget(Paragraph::new(left), l);
    frame.render_widget(Paragraph::new(right).alignment(Alignment::Right), r);
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App, model: &Model) {
    let wide = area.width >= 110;
    let overlaps = model.agg.findings.iter().any(|f| f.kind != FindingKind::SharedMap);
    let titles: Vec<Line> = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let n = rows::count(t, model);
            let mut spans = vec![Span::styled(format!("{}", i + 1), key_style()), Span::raw(format!(" {}", t.title()))];
            if t == Tab::Findings && n > 0 {
                let style = if overlaps { Style::new().fg(Color::White).bg(Color::Red) } else { Style::new().fg(Color::Yellow) };
                spans.push(Span::styled(format!(" {n}"), style.add_modifier(Modifier::BOLD)));
            } else if wide {
                spans.push(Span::styled(format!(" {n}"), dim()));
            }
            Line::from(spans)
        })
        .collect();
    let tabs = Tabs::new(titles)
        .select(app.tab.index())
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD))
        .divider(Span::styled("│", dim()));
    frame.render_widget(tabs, area);
}

/// What a selected row is called in titles.
fn row_label(row: &RowData) -> String {
    match row.id {
        RowId::Goroutine { goid, .. } => format!("goroutine {goid}"),
        RowId::Thread { tid, .. } => format!("thread {tid}"),
        RowId::Map { map, .. } => format!("map {}", fmt_addr(map.addr)),
        RowId::Site { .. } => row.cells.first().cloned().unwrap_or_default(),
        RowId::Bpf { .. } => format!("bpf map {}", row.cells.get(3).cloned().unwrap_or_default()),
        RowId::Finding { map, .. } => format!("map {}", fmt_addr(map.addr)),
        RowId::Class { .. } => row.cells.get(1).cloned().unwrap_or_default(),
    }
}

fn draw_sparklines(frame: &mut Frame, area: Rect, app: &App, model: &Model, selected: Option<&RowData>) {
    let row_ring = selected.and_then(|r| app.stats.get(&r.id).map(|s| (r, s)));
    let (total_area, row_area) = match row_ring {
        Some(_) if area.width >= 60 => {
            let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
            (a, Some(b))
        }
        _ => (area, None),
    };
    let tail = |v: Vec<u64>, w: u16| -> Vec<u64> {
        let skip = v.len().saturating_sub(usize::from(w));
        v.into_iter().skip(skip).collect()
    };
    let hist = tail(model.history.iter().copied().collect(), total_area.width);
    let peak = hist.iter().copied().max().unwrap_or(0);
    let title = Line::from(vec![
        Span::styled(" total ", bold()),
        Span::raw(format!("{} writes/s, peak {} ", fmt_rate(model.agg.total_rate), fmt_count(peak))),
    ]);
    frame.render_widget(
        Sparkline::default()
            .block(Block::new().borders(Borders::TOP).border_style(dim()).title(title))
            .data(&hist)
            .style(Style::new().fg(Color::Green)),
        total_area,
    );
    if let (Some(ra), Some((row, stats))) = (row_area, row_ring) {
        let ring = tail(stats.ring.iter().copied().collect(), ra.width);
        let title = Line::from(vec![
            Span::styled(format!(" {} ", fit(&row_label(row), usize::from(ra.width / 2))), bold()),
            Span::raw(format!("{}/s ", fmt_rate(row.rate))),
        ]);
        frame.render_widget(
            Sparkline::default()
                .block(Block::new().borders(Borders::TOP).border_style(dim()).title(title))
                .data(&ring)
                .style(Style::new().fg(ACCENT)),
            ra,
        );
    }
}

fn alert_style(a: Alert) -> Style {
    match a {
        Alert::None => Style::new(),
        Alert::Warn => Style::new().fg(Color::Yellow),
        Alert::Bad => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

fn empty_message(app: &App) -> String {
    if !app.filter.trim().is_empty() {
        return format!("no rows match the filter \"{}\" (Esc clears it)", app.filter);
    }
    match app.tab {
        Tab::Bpf => "no bpf(2) map writes seen".into(),
        Tab::Findings => "no findings: no overlapping writes, no shared maps".into(),
        _ => "waiting for map writes…".into(),
    }
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App, model: &Model, rows: &RowList, sel: Option<usize>) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let cols = rows::columns(app.tab);
    let fit_cols = rows::fit_columns(cols, area.width.saturating_sub(1));
    let sort = app.sort[app.tab.index()];
    let align = |k: Kind| if k == Kind::Text { Alignment::Left } else { Alignment::Right };
    let header = Row::new(fit_cols.iter().map(|&(i, w)| {
        let c = &cols[i];
        let title = if sort.col == Some(i) {
            format!("{}{}", c.title, if sort.desc { "▼" } else { "▲" })
        } else {
            c.title.to_string()
        };
        let style = if sort.col == Some(i) { bold().fg(ACCENT) } else { bold() };
        Cell::from(Line::from(fit(&title, usize::from(w))).alignment(align(c.kind))).style(style)
    }))
    .style(Style::new().bg(Color::Indexed(236)));
    // Only the rows that show are formatted: the window the table would
    // scroll to, starting at the top, to show the selection (on its last
    // line when it is further down).
    let visible = usize::from(area.height.saturating_sub(1));
    let first = sel.map_or(0, |s| (s + 1).saturating_sub(visible));
    let body: Vec<Row> = (first..rows.len().min(first + visible))
        .map(|i| rows.row(model, i))
        .map(|r| {
            Row::new(fit_cols.iter().map(|&(i, w)| {
                let text = r.cells.get(i).map(String::as_str).unwrap_or("");
                Cell::from(Line::from(fit(text, usize::from(w))).alignment(align(cols[i].kind)))
            }))
            .style(alert_style(r.alert))
        })
        .collect();
    let widths: Vec<Constraint> = fit_cols.iter().map(|&(_, w)| Constraint::Length(w)).collect();
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(sel.map(|s| s.saturating_sub(first)));
    frame.render_stateful_widget(table, area, &mut state);
    if rows.is_empty() && area.height >= 2 {
        let msg = Rect { y: area.y + 1 + (area.height - 1) / 3, height: 1, ..area };
        frame.render_widget(Paragraph::new(empty_message(app)).style(dim()).alignment(Alignment::Center), msg);
    }
    if rows.len() > visible {
        let mut sb = ScrollbarState::new(rows.len()).position(sel.unwrap_or(0));
        let track = Rect { y: area.y + 1, height: area.height - 1, ..area };
        frame.render_stateful_widget(
            Scrollbar::new(ScrollbarOrientation::VerticalRight).begin_symbol(None).end_symbol(None),
            track,
            &mut sb,
        );
    }
}

fn ops_line(o: &Ops) -> String {
    let reads = if o.reads > 0 { format!(", {} reads", o.reads) } else { String::new() };
    format!("{} writes, {} deletes, {} clears{reads}", o.writes, o.deletes, o.clears)
}

fn label(name: &str) -> Span<'static> {
    Span::styled(format!("{name:<11}"), dim())
}

fn kv(name: &str, value: impl Into<String>) -> Line<'static> {
    Line::from(vec![label(name), Span::raw(value.into())])
}

fn section(title: &str) -> Line<'static> {
    Line::from(Span::styled(title.to_string(), bold().fg(ACCENT)))
}

fn created(model: &Model, pid: u32, goid: u64) -> String {
    model.names.created_by.get(&(pid, goid)).map(Location::short).unwrap_or_else(|| "?".into())
}

/// The rate line of the detail pane: now, and p50/p99/max over the window
/// from the row's HDR histogram.
fn rate_lines(app: &App, row: &RowData) -> Vec<Line<'static>> {
    let now = Line::from(vec![label("rate"), Span::styled(format!("{}/s now", fmt_rate(row.rate)), bold())]);
    let window = match app.rate_quantiles(&row.id) {
        Some((p50, p99, max, n)) => format!(
            "p50 {} · p99 {} · max {} /s ({n}×{})",
            fmt_approx(p50),
            fmt_approx(p99),
            fmt_approx(max),
            fmt_interval(app.interval)
        ),
        None => "idle".into(),
    };
    vec![now, kv("window", window)]
}

/// A title line: the row's name in bold, then context.
fn title(name: String, context: String) -> Line<'static> {
    Line::from(vec![Span::styled(name, bold()), Span::styled(context, dim())])
}

/// Rows below a section title, busiest first, with their counts.
fn ranked(mut items: Vec<(String, u64)>, limit: usize) -> Vec<Line<'static>> {
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let more = items.len().saturating_sub(limit);
    let mut out: Vec<Line> = items
        .into_iter()
        .take(limit)
        .map(|(name, n)| Line::from(vec![Span::raw(format!("  {:>9}  ", fmt_count(n))), Span::raw(name)]))
        .collect();
    if more > 0 {
        out.push(Line::from(Span::styled(format!("  … {more} more"), dim())));
    }
    out
}

/// What the detail pane says about `row`: a goroutine's maps and sites, a
/// map's writers and sites, and so on.
pub fn detail_lines(app: &App, model: &Model, row: &RowData) -> Vec<Line<'static>> {
    let a = &model.agg;
    let mut out = Vec::new();
    const N: usize = 12;
    match row.id {
        RowId::Goroutine { pid, goid } => {
            let Some(g) = a.goroutines.iter().find(|g| g.pid == pid && g.goid == goid) else { return out };
            let tids = g.tids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            out.push(title(format!("goroutine {goid}"), format!(" · {} · threads {tids}", process_name(model, pid))));
            out.push(kv("created by", created(model, pid, goid)));
            out.push(kv("ops", ops_line(&g.ops)));
            out.extend(rate_lines(app, row));
            out.push(section(&format!("maps written ({})", g.maps.len())));
            let maps = a
                .maps
                .iter()
                .filter(|m| m.pid == pid && g.maps.contains(&m.map))
                .map(|m| {
                    let n = m.writers.get(&goid).map(Ops::total).unwrap_or(0);
                    (format!("{} {}", fmt_addr(m.map.addr), map_type(model, pid, m.map)), n)
                })
                .collect();
            out.extend(ranked(maps, N));
            out.push(section(&format!("sites ({})", g.sites.len())));
            out.extend(ranked(g.sites.iter().map(|(&pc, &n)| (site_name(model, pid, pc), n)).collect(), N));
        }
        RowId::Map { pid, map } => {
            let Some(m) = a.maps.iter().find(|m| m.pid == pid && m.map == map) else { return out };
            out.push(Line::from(vec![
                Span::styled(format!("map {}", fmt_addr(map.addr)), bold()),
                Span::raw(format!("  {}", map_type(model, pid, map))),
                Span::styled(format!(" · {}", process_name(model, pid)), dim()),
            ]));
            out.push(kv("ops", ops_line(&m.ops)));
            if let Some(l) = model.lengths.get(pid, map) {
                let slope = l.slope().map(|s| format!(", {s:+.1}/s")).unwrap_or_default();
                out.push(kv("len", format!("{} (min {}, max {}{slope}, {} samples)", l.last, l.min, l.max, l.samples)));
            }
            if m.overlaps > 0 {
                out.push(Line::from(vec![
                    label("overlaps"),
                    Span::styled(format!("{} overlapping writes", m.overlaps), alert_style(Alert::Bad)),
                ]));
            }
            out.extend(rate_lines(app, row));
            let usage = crate::model::advice::Usage {
                writers: m.writers.len() as u64,
                mutations: m.ops.total(),
                reads: m.ops.reads,
                reads_probed: model.reads_probed,
                mutations_per_s: m.rate,
                overlaps: m.overlaps,
            };
            if let Some(a) = crate::model::advice::advise(&usage) {
                let alert = if a.rule == "bug" { Alert::Bad } else { Alert::None };
                out.push(Line::from(vec![label("advice"), Span::styled(format!("[{}] {}", a.rule, a.text), alert_style(alert))]));
            }
            out.push(section(&format!("writers ({})", m.writers.len())));
            out.extend(ranked(
                m.writers
                    .iter()
                    .map(|(&g, o)| (format!("goroutine {g}  created by {}", created(model, pid, g)), o.total()))
                    .collect(),
                N,
            ));
            out.push(section(&format!("sites ({})", m.sites.len())));
            out.extend(ranked(m.sites.iter().map(|(&pc, o)| (site_name(model, pid, pc), o.total())).collect(), N));
        }
        RowId::Thread { pid, tid } => {
            let Some(t) = a.threads.iter().find(|t| t.pid == pid && t.tid == tid) else { return out };
            out.push(title(format!("thread {tid} {}", t.comm), format!(" · {}", process_name(model, pid))));
            out.push(kv("ops", ops_line(&t.ops)));
            out.extend(rate_lines(app, row));
            out.push(section(&format!("goroutines seen ({})", t.goroutines.len())));
            let mut per_g: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
            for (k, &n) in model.counts() {
                if k.pid == pid && k.tid == tid {
                    *per_g.entry(k.goid).or_default() += n;
                }
            }
            out.extend(ranked(
                per_g.into_iter().map(|(g, n)| (format!("goroutine {g}  created by {}", created(model, pid, g)), n)).collect(),
                N,
            ));
        }
        RowId::Site { pid, pc } => {
            let Some(s) = a.sites.iter().find(|s| s.pid == pid && s.pc == pc) else { return out };
            out.push(title(site_name(model, pid, pc), format!(" · pc {} · {}", fmt_addr(pc), process_name(model, pid))));
            if let Some(l) = &s.location {
                out.push(kv("file", format!("{}:{}", l.file, l.line)));
            }
            out.push(kv("ops", ops_line(&s.ops)));
            out.extend(rate_lines(app, row));
            out.push(section(&format!("maps written here ({})", s.maps.len())));
            out.extend(ranked(
                a.maps
                    .iter()
                    .filter(|m| m.pid == pid && s.maps.contains(&m.map))
                    .map(|m| {
                        let n = m.sites.get(&pc).map(Ops::total).unwrap_or(0);
                        (format!("{} {}", fmt_addr(m.map.addr), map_type(model, pid, m.map)), n)
                    })
                    .collect(),
                N,
            ));
        }
        RowId::Bpf { pid, tid, fd, map } => {
            let Some(b) = model.bpf.iter().find(|b| b.pid == pid && b.tid == tid && b.fd == fd && b.map_id == map) else {
                return out;
            };
            let name = b.map_name.clone().unwrap_or_else(|| "?".into());
            out.push(Line::from(Span::styled(format!("bpf map {name}"), bold())));
            out.push(kv("map id", b.map_id.map(|i| i.to_string()).unwrap_or_else(|| "unresolved".into())));
            out.push(kv("type", b.map_type.clone().unwrap_or_else(|| "?".into())));
            out.push(kv("writer", format!("pid {pid} tid {tid} ({}), fd {fd}", b.comm)));
            out.push(kv("updates", format!("{} elements in {} calls", b.updates, b.update_calls)));
            out.push(kv("deletes", format!("{} elements in {} calls", b.deletes, b.delete_calls)));
            if b.lookup_calls > 0 {
                out.push(kv("lookups", format!("{} elements in {} calls", b.lookups, b.lookup_calls)));
            }
            out.extend(rate_lines(app, row));
            // --bpf-hot-keys: the map's hottest keys, by every writer.
            if let Some(hk) = model.bpf_hot_keys.iter().find(|h| Some(h.map_id) == b.map_id) {
                out.push(section("hottest keys (FNV-1a of the key bytes; writes by anyone)"));
                for (hash, n) in hk.keys.iter().take(N) {
                    out.push(Line::from(format!("  {hash:#018x}  {n}")));
                }
            }
        }
        RowId::Finding { kind, pid, map } => {
            let Some(f) = a.findings.iter().find(|f| f.kind == kind && f.pid == pid && f.map == map) else { return out };
            let (title, alert) = match kind {
                FindingKind::OverlappingWrites => ("OVERLAPPING WRITES", Alert::Bad),
                FindingKind::SharedMap => ("shared map", Alert::Warn),
                FindingKind::ReadDuringWrite => ("READ DURING WRITE", Alert::Bad),
                FindingKind::IterateDuringWrite => ("ITERATION DURING WRITE", Alert::Bad),
                FindingKind::GrowingMap => ("GROWING MAP", Alert::Warn),
            };
            out.push(Line::from(Span::styled(title, alert_style(alert))));
            out.push(kv("map", format!("{} {}", fmt_addr(map.addr), f.type_name.as_deref().unwrap_or("?"))));
            out.push(kv("process", process_name(model, pid)));
            out.push(kv(if kind == FindingKind::SharedMap { "ops" } else { "times" }, f.count.to_string()));
            out.push(section(&format!("goroutines ({})", f.goroutines.len())));
            for &g in f.goroutines.iter().take(N) {
                out.push(Line::from(format!("  goroutine {g}  created by {}", created(model, pid, g))));
            }
            out.push(section(&format!("sites ({})", f.sites.len())));
            for s in f.sites.iter().take(N) {
                out.push(Line::from(format!("  {s}")));
            }
        }
        RowId::Class { pid, kind, .. } => {
            let Some(c) = a.classes.iter().find(|c| c.pid == pid && c.kind == kind && Some(&c.name) == row.cells.get(1)) else {
                return out;
            };
            let ClassRow { instances, ops, .. } = c;
            match kind {
                ClassKind::Map => {
                    out.push(section("map class"));
                    out.push(kv("type and site", c.name.clone()));
                    out.push(kv("instances", format!("{instances} ({} written by more than one goroutine)", c.shared_instances)));
                    out.push(kv("busiest instance", format!("{} ops", c.max_instance_ops)));
                }
                ClassKind::Goroutine => {
                    out.push(section("goroutine class"));
                    out.push(kv("created by", c.name.clone()));
                    out.push(kv("goroutines", instances.to_string()));
                }
            }
            out.push(kv("ops", format!("{} writes, {} deletes, {} clears", ops.writes, ops.deletes, ops.clears)));
            out.push(kv("per instance", c.per_instance().to_string()));
            out.push(kv("process", process_name(model, pid)));
        }
    }
    out
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, model: &Model, selected: Option<&RowData>) {
    let block = Block::bordered().border_style(Style::new().fg(ACCENT)).title(" detail (Enter/Esc closes) ");
    let lines = match selected {
        Some(r) => detail_lines(app, model, r),
        None => vec![Line::from(Span::styled("nothing selected", dim()))],
    };
    // A sampled map's length history under its text (`--len-maps`).
    let lengths = selected.and_then(|r| match r.id {
        RowId::Map { pid, map } => model.lengths.get(pid, map),
        _ => None,
    });
    let Some(l) = lengths.filter(|_| area.height >= 12) else {
        frame.render_widget(Paragraph::new(lines).block(block), area);
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [text, spark] = Layout::vertical([Constraint::Min(1), Constraint::Length(4)]).areas(inner);
    frame.render_widget(Paragraph::new(lines), text);
    let skip = l.recent.len().saturating_sub(usize::from(spark.width));
    let data: Vec<u64> = l.recent.iter().skip(skip).copied().collect();
    let title = Line::from(vec![
        Span::styled(" length ", bold()),
        Span::raw(format!("{} (min {}, max {}) ", l.last, l.min, l.max)),
    ]);
    frame.render_widget(
        Sparkline::default()
            .block(Block::new().borders(Borders::TOP).border_style(dim()).title(title))
            .data(&data)
            .style(Style::new().fg(ACCENT)),
        spark,
    );
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    if app.filtering {
        let line = Line::from(vec![
            Span::styled(" filter: ", key_style()),
            Span::raw(app.filter.clone()),
            Span::styled("█", Style::new().fg(ACCENT)),
            Span::styled("   Enter keep · Esc clear", dim()),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let cols = rows::columns(app.tab);
    let sort = app.sort[app.tab.index()];
    let sort_name = match sort.col {
        Some(c) => format!("{}{}", cols.get(c).map(|c| c.title).unwrap_or(""), if sort.desc { "▼" } else { "▲" }),
        None => if sort.desc { "oldest first".into() } else { "newest first".into() },
    };
    let mut spans = Vec::new();
    let mut used = 0usize;
    if !app.filter.is_empty() {
        let s = format!(" filter: {} ", app.filter);
        used += s.chars().count();
        spans.push(Span::styled(s, Style::new().fg(Color::Black).bg(Color::Yellow)));
    }
    let hints: [(&str, String); 8] = [
        ("q", "quit".into()),
        ("?", "help".into()),
        ("s/S", format!("sort {sort_name}")),
        ("/", "filter".into()),
        ("⏎", if app.detail { "close".into() } else { "detail".into() }),
        ("p", if app.paused { "resume".into() } else { "pause".into() }),
        ("+/-", fmt_interval(app.interval)),
        ("1-7", "view".into()),
    ];
    for (k, what) in hints {
        let w = k.chars().count() + what.chars().count() + 3;
        if used + w > usize::from(area.width) {
            break;
        }
        used += w;
        spans.push(Span::raw(" "));
        spans.push(Span::styled(k, key_style()));
        spans.push(Span::raw(format!(" {what} ")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_help(frame: &mut Frame, area: Rect, app: &App, model: &Model) {
    let k = |keys: &str, what: &str| Line::from(vec![Span::styled(format!(" {keys:<18}"), key_style()), Span::raw(what.to_string())]);
    let mut lines = vec![
        k("1-7 Tab ←/→", "switch view (Shift-Tab: back)"),
        k("↑/↓ j/k PgUp/PgDn", "move; Home/End (g/G) first/last"),
        k("Enter", "detail: a goroutine's maps and sites, a map's writers…"),
        k("s > / <", "sort by the next / previous column"),
        k("S", "reverse the sort"),
        k("/", "filter by text (process, type, function); Enter keeps"),
        k("p Space", "pause the view (the kernel keeps counting)"),
        k("+ / -", &format!("refresh less / more often (now {})", fmt_interval(app.interval))),
        k("q Esc Ctrl-C", "quit (Esc first closes help, detail, filter)"),
        Line::raw(""),
        Line::from(Span::styled(
            " BPF maps: writes through the bpf(2) syscall only; writes by BPF programs and through mmap'ed arrays are not seen",
            dim(),
        )),
        Line::raw(""),
    ];
    let c = &app.cost;
    if c.is_empty() {
        lines.push(Line::from(Span::styled(" tick cost: no ticks yet", dim())));
    } else {
        lines.push(Line::from(Span::styled(
            format!(
                " tick cost: last {}  p50 {}  p99 {}  max {}  ({} ticks)",
                fmt_us(app.last_cost.as_micros() as u64),
                fmt_us(c.value_at_quantile(0.5)),
                fmt_us(c.value_at_quantile(0.99)),
                fmt_us(c.max()),
                c.len()
            ),
            dim(),
        )));
    }
    let lost: Vec<String> = probe_common::lost::NAMES
        .iter()
        .zip(model.lost.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .chain((model.unresolved > 0).then(|| format!("unresolved {}", model.unresolved)))
        .collect();
    if lost.is_empty() {
        lines.push(Line::from(Span::styled(" lost: nothing", dim())));
    } else {
        lines.push(Line::from(Span::styled(format!(" LOST: {}", lost.join(", ")), Style::new().fg(Color::Red))));
    }
    for warning in &app.status.warnings {
        lines.push(Line::from(Span::styled(format!(" warning: {warning}"), Style::new().fg(Color::Yellow))));
    }
    let w = area.width.saturating_sub(4).min(76);
    let inner = usize::from(w.saturating_sub(2)).max(1);
    let wrapped: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let h = area.height.saturating_sub(2).min(wrapped as u16 + 2);
    let r = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(Block::bordered().border_style(Style::new().fg(ACCENT)).title(" mapaudit help — any key closes ")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::{Action, testutil};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn render(app: &App, model: &Model, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, app, model)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>())
            .collect()
    }

    fn screen(lines: &[String]) -> String {
        lines.join("\n")
    }

    fn app_with(model: &Model) -> App {
        let mut app = App::default();
        app.status.target = "pid 4242 (writers)".into();
        app.status.attached = 1;
        app.on_tick(model, Duration::from_micros(250));
        app
    }

    /// The data rows of the table (after its header line).
    fn table_rows(lines: &[String], header: &str) -> Vec<String> {
        let start = lines.iter().position(|l| l.contains(header)).expect("table header") + 1;
        lines[start..lines.len() - 1].iter().take_while(|l| !l.trim().is_empty()).cloned().collect()
    }

    fn first_token(l: &str) -> String {
        l.split_whitespace().next().unwrap_or("").to_string()
    }

    #[test]
    fn goroutines_at_80x24() {
        let m = testutil::model();
        let app = app_with(&m);
        let lines = render(&app, &m, 80, 24);
        let s = screen(&lines);
        assert!(lines[0].contains("mapaudit") && lines[0].contains("pid 4242 (writers)"), "{s}");
        assert!(lines[0].contains("1 attached") && lines[0].contains("4800 writes/s") && lines[0].contains("lost 0"), "{s}");
        assert!(lines[1].contains("1 Goroutines") && lines[1].contains("6 Findings 2"), "{s}");
        assert!(s.contains("total 4800 writes/s, peak 4800"), "{s}");
        let header = lines.iter().find(|l| l.contains("GOID")).unwrap();
        for h in ["GOID", "CREATED BY", "WRITES/S▼", "TOTAL", "MAPS WRITTEN", "THREAD"] {
            assert!(header.contains(h), "{h} in {header}");
        }
        // PROCESS does not fit at 80 columns.
        assert!(!header.contains("PROCESS"));
        let rows = table_rows(&lines, "GOID");
        assert_eq!(rows.iter().map(|l| first_token(l)).collect::<Vec<_>>(), ["7", "8", "9", "10", "11"]);
        assert!(rows[0].contains("main.main main.go:170") && rows[0].contains("3500") && rows[0].contains("4600"), "{}", rows[0]);
        assert!(rows[0].contains("map[string][]string") && rows[0].contains("101"), "{}", rows[0]);
        assert!(lines[23].contains("q quit") && lines[23].contains("sort WRITES/S▼"), "{}", lines[23]);
        assert!(lines.iter().all(|l| l.chars().count() == 80));
    }

    #[test]
    fn large_terminal_shows_every_column() {
        let m = testutil::model();
        let app = app_with(&m);
        let lines = render(&app, &m, 200, 50);
        let header = lines.iter().find(|l| l.contains("GOID")).unwrap();
        assert!(header.contains("PROCESS") && header.contains("THREAD"), "{header}");
        let rows = table_rows(&lines, "GOID");
        assert!(rows[0].contains("4242 writers"), "{}", rows[0]);
        // Counts in the tab titles on wide terminals.
        assert!(lines[1].contains("1 Goroutines 5") && lines[1].contains("3 Maps 4"), "{}", lines[1]);
        // The selected row's sparkline.
        assert!(lines.iter().any(|l| l.contains("goroutine 7 3500/s")), "{}", screen(&lines));
    }

    #[test]
    fn maps_view_shows_types_and_flags_the_racy_map() {
        let m = testutil::model();
        let mut app = app_with(&m);
        app.apply(Action::Tab(Tab::Maps), &m);
        let lines = render(&app, &m, 80, 24);
        let rows = table_rows(&lines, "ADDRESS");
        assert_eq!(rows.len(), 4);
        assert!(rows[0].starts_with("0xc000010000") && rows[0].contains("map[string][]string"), "{}", rows[0]);
        assert!(rows.iter().any(|r| r.contains("map[int64]int")));
        // The map with an overlap is drawn bold red.
        let t = {
            let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
            t.draw(|f| draw(f, &app, &m)).unwrap();
            t.backend().buffer().clone()
        };
        let y = lines.iter().position(|l| l.contains("map[string]int ")).unwrap() as u16;
        assert_eq!(t[(0, y)].fg, Color::Red);
    }

    #[test]
    fn reversing_the_sort_flips_the_rows() {
        let m = testutil::model();
        let mut app = app_with(&m);
        app.apply(crate::tui::action(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char('S')), &app), &m);
        let lines = render(&app, &m, 80, 24);
        let rows = table_rows(&lines, "GOID");
        assert_eq!(rows.iter().map(|l| first_token(l)).collect::<Vec<_>>(), ["11", "10", "9", "8", "7"]);
        assert!(lines.iter().any(|l| l.contains("WRITES/S▲")));
    }

    #[test]
    fn filter_hides_rows_and_shows_in_footer() {
        let m = testutil::model();
        let mut app = app_with(&m);
        app.apply(Action::Tab(Tab::Maps), &m);
        app.apply(Action::StartFilter, &m);
        for c in "int64".chars() {
            app.apply(Action::FilterChar(c), &m);
        }
        let lines = render(&app, &m, 80, 24);
        assert!(lines[23].contains("filter: int64█"), "{}", lines[23]);
        app.apply(Action::FilterKeep, &m);
        let lines = render(&app, &m, 80, 24);
        let rows = table_rows(&lines, "ADDRESS");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].contains("map[int64]int"));
        assert!(lines[23].starts_with(" filter: int64 "), "{}", lines[23]);
        app.apply(Action::FilterChar('z'), &m);
        let lines = render(&app, &m, 80, 24);
        assert!(screen(&lines).contains("no rows match the filter \"int64z\""));
    }

    #[test]
    fn help_overlay() {
        let m = testutil::model();
        let mut app = app_with(&m);
        app.status.warnings.push("main.x: probe at the symbol (prologue not decoded)".into());
        app.apply(Action::ToggleHelp, &m);
        let s = screen(&render(&app, &m, 80, 24));
        for want in ["mapaudit help", "sort by the next", "filter by text", "tick cost: last 250µs", "p99 250µs", "lost: nothing", "warning: main.x"] {
            assert!(s.contains(want), "{want} in\n{s}");
        }
    }

    #[test]
    fn lost_paused_and_ended_in_the_header() {
        let mut m = testutil::model();
        m.lost[0] = 7;
        let mut app = app_with(&m);
        app.paused = true;
        app.status.ended = Some("command exited with status 3".into());
        let lines = render(&app, &m, 120, 30);
        assert!(lines[0].contains("LOST 7") && lines[0].contains("PAUSED"), "{}", lines[0]);
        assert!(lines[0].contains("command exited with status 3"), "{}", lines[0]);
        // The status survives a narrow terminal; the target name gives way.
        let lines = render(&app, &m, 80, 24);
        assert!(lines[0].contains("LOST 7") && lines[0].contains("PAUSED"), "{}", lines[0]);
        app.status.attached = 0;
        assert!(render(&app, &m, 120, 30)[0].contains("NOT ATTACHED"));
    }

    #[test]
    fn detail_pane_drills_down() {
        let m = testutil::model();
        let mut app = app_with(&m);
        app.apply(Action::ToggleDetail, &m);
        let s = screen(&render(&app, &m, 80, 24));
        for want in ["goroutine 7", "created by main.main main.go:170", "p50 3.5k · p99 3.5k · max 3.5k /s (1×1s)", "maps written (1)", "0xc000010000 map[string][]string", "sites (2)", "main.strWriter main.go:81"] {
            assert!(s.contains(want), "{want} in\n{s}");
        }
        // A map's writers and sites; wide terminals put the pane on the right.
        app.apply(Action::Tab(Tab::Maps), &m);
        app.apply(Action::End, &m);
        app.apply(Action::Up, &m);
        let lines = render(&app, &m, 200, 50);
        let s = screen(&lines);
        for want in ["map 0xc000030000  map[string]int", "1 overlapping writes", "writers (2)", "goroutine 9  created by main.main main.go:173", "main.sharedWriter main.go:123"] {
            assert!(s.contains(want), "{want} in\n{s}");
        }
        let header = lines.iter().find(|l| l.contains("ADDRESS")).unwrap();
        assert!(header.contains("detail (Enter/Esc closes)"), "{header}");
    }

    #[test]
    fn every_view_renders_at_80x24_and_tiny() {
        let m = testutil::model();
        let mut app = app_with(&m);
        for tab in Tab::ALL {
            app.apply(Action::Tab(tab), &m);
            for (w, h) in [(80, 24), (200, 50), (20, 5)] {
                app.detail = false;
                let _ = render(&app, &m, w, h);
                app.detail = true;
                let _ = render(&app, &m, w, h);
            }
        }
        app.apply(Action::Tab(Tab::Bpf), &m);
        app.detail = false;
        let s = screen(&render(&app, &m, 80, 24));
        assert!(s.contains("cilium_ct4") && s.contains("MAP ID"), "{s}");
        app.detail = true;
        let s = screen(&render(&app, &m, 120, 40));
        for want in ["lookups", "40 elements in 4 calls", "hottest keys", "0x0000000000abcdef  9", "0x0000000000000012  3"] {
            assert!(s.contains(want), "{want}: {s}");
        }
        app.detail = false;
        app.apply(Action::Tab(Tab::Findings), &m);
        let s = screen(&render(&app, &m, 80, 24));
        assert!(s.contains("OVERLAP") && s.contains("SHARED") && s.contains("10, 9"), "{s}");
    }

    #[test]
    fn a_long_table_scrolls_to_the_selection() {
        use probe_common::uprobe::{WriteKey, routine};
        let mut m = Model::new();
        let k = |goid| WriteKey { pid: 1, tid: 2, goid, map: 0xc0, pc: 0x10, routine: routine::MAPASSIGN, _pad: [0; 3], inst: 0 };
        // Goroutine g wrote 1000 - g times: ranked 1, 2, … 300.
        m.set_counts((1..=300).map(|g| (k(g), 1000 - g)));
        m.tick(Duration::from_secs(1));
        let mut app = app_with(&m);
        let goids = |app: &App| -> Vec<u64> {
            table_rows(&render(app, &m, 80, 24), "GOID").iter().map(|l| first_token(l).parse().unwrap()).collect()
        };
        let top = goids(&app);
        assert_eq!(top.first(), Some(&1));
        let shown = top.len();
        assert!(shown > 5 && shown < 30, "{top:?}");
        for (to, last) in [(Action::End, 300), (Action::PageUp, 300 - app.page as u64)] {
            app.apply(to, &m);
            let rows = goids(&app);
            assert_eq!(rows, ((last + 1 - shown as u64)..=last).collect::<Vec<_>>());
        }
        // The selected row is drawn reversed, on the table's last line.
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|f| draw(f, &app, &m)).unwrap();
        let lines = render(&app, &m, 80, 24);
        let y = lines.iter().position(|l| first_token(l) == (300 - app.page).to_string()).unwrap() as u16;
        assert!(t.backend().buffer()[(0, y)].modifier.contains(Modifier::REVERSED));
        assert!(!t.backend().buffer()[(0, y - 1)].modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn empty_model_says_it_is_waiting() {
        let m = Model::new();
        let app = App::default();
        let s = screen(&render(&app, &m, 80, 24));
        assert!(s.contains("waiting for map writes"), "{s}");
    }
}
