//! Keys: a pure map from `KeyEvent` to `Action`, and `App::apply`.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::rows::{self, Kind};
use super::{App, INTERVALS_MS, Sort, Tab};
use crate::model::Model;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    NextTab,
    PrevTab,
    Tab(Tab),
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    ToggleDetail,
    CloseDetail,
    /// Sort by the next column (`s`, `>`).
    NextSort,
    /// Sort by the previous column (`<`).
    PrevSort,
    /// Flip the direction (`S`).
    ReverseSort,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    /// Enter: keep the filter, give the keys back.
    FilterKeep,
    /// Esc: drop the filter.
    FilterClear,
    TogglePause,
    /// `+`: refresh less often.
    Slower,
    /// `-`: refresh more often.
    Faster,
    ToggleHelp,
}

/// What `key` means in the app's current state.
pub fn action(key: KeyEvent, app: &App) -> Action {
    if key.kind == KeyEventKind::Release {
        return Action::None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
        return Action::Quit;
    }
    if app.filtering {
        return match key.code {
            KeyCode::Esc => Action::FilterClear,
            KeyCode::Enter => Action::FilterKeep,
            KeyCode::Backspace => Action::FilterBackspace,
            KeyCode::Char(c) if !ctrl => Action::FilterChar(c),
            _ => Action::None,
        };
    }
    if app.help {
        return match key.code {
            KeyCode::Char('q') => Action::Quit,
            _ => Action::ToggleHelp,
        };
    }
    match key.code {
        KeyCode::Char('q') => Action::Quit,
        // Esc backs out of one thing at a time, then quits.
        KeyCode::Esc if app.detail => Action::CloseDetail,
        KeyCode::Esc if !app.filter.is_empty() => Action::FilterClear,
        KeyCode::Esc => Action::Quit,
        KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => Action::NextTab,
        KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => Action::PrevTab,
        KeyCode::Char(c @ '1'..='7') => Action::Tab(Tab::from_index(c as usize - '1' as usize)),
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Char('b') if ctrl => Action::PageUp,
        KeyCode::Char('f') if ctrl => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Home,
        KeyCode::End | KeyCode::Char('G') => Action::End,
        KeyCode::Enter => Action::ToggleDetail,
        KeyCode::Char('s' | '>') => Action::NextSort,
        KeyCode::Char('<') => Action::PrevSort,
        KeyCode::Char('S' | 'r') => Action::ReverseSort,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('p' | ' ') => Action::TogglePause,
        KeyCode::Char('+' | '=') => Action::Slower,
        KeyCode::Char('-' | '_') => Action::Faster,
        KeyCode::Char('?') | KeyCode::F(1) => Action::ToggleHelp,
        _ => Action::None,
    }
}

/// The natural direction of a fresh sort: numbers biggest first, text A→Z.
fn fresh_sort(tab: Tab, col: usize) -> Sort {
    let desc = rows::columns(tab).get(col).is_some_and(|c| c.kind != Kind::Text);
    Sort { col: Some(col), desc }
}

impl App {
    /// Applies a user action. `model` is only read, to keep the selection on
    /// a row that exists.
    pub fn apply(&mut self, action: Action, model: &Model) {
        let t = self.tab.index();
        let n = rows::columns(self.tab).len();
        match action {
            Action::None => {}
            Action::Quit => self.quit = true,
            Action::NextTab => self.switch(self.tab.next(), model),
            Action::PrevTab => self.switch(self.tab.prev(), model),
            Action::Tab(tab) => self.switch(tab, model),
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home | Action::End => {
                let rows = super::row_list(self.tab, model, self);
                let cur = self.selection_in(&rows, model).unwrap_or(0);
                let page = self.page.max(1);
                let to = match action {
                    Action::Up => cur.saturating_sub(1),
                    Action::Down => cur + 1,
                    Action::PageUp => cur.saturating_sub(page),
                    Action::PageDown => cur + page,
                    Action::Home => 0,
                    _ => usize::MAX,
                };
                // Home goes back to watching the top row.
                self.pinned[self.tab.index()] = action != Action::Home;
                self.select(to, model);
            }
            Action::ToggleDetail => self.detail = !self.detail,
            Action::CloseDetail => self.detail = false,
            Action::NextSort | Action::PrevSort => {
                let cur = self.sort[t].col;
                let col = match (action, cur) {
                    (Action::NextSort, None) => 0,
                    (Action::NextSort, Some(c)) => (c + 1) % n,
                    (_, None) => n - 1,
                    (_, Some(c)) => (c + n - 1) % n,
                };
                self.sort[t] = fresh_sort(self.tab, col);
                self.reselect(self.tab, model);
            }
            Action::ReverseSort => {
                self.sort[t].desc = !self.sort[t].desc;
                self.reselect(self.tab, model);
            }
            Action::StartFilter => self.filtering = true,
            Action::FilterChar(c) => {
                self.filter.push(c);
                self.reselect_all(model);
            }
            Action::FilterBackspace => {
                self.filter.pop();
                self.reselect_all(model);
            }
            Action::FilterKeep => self.filtering = false,
            Action::FilterClear => {
                self.filter.clear();
                self.filtering = false;
                self.reselect_all(model);
            }
            Action::TogglePause => self.paused = !self.paused,
            Action::Slower | Action::Faster => {
                let ms = self.interval.as_millis() as u64;
                let ms = if action == Action::Slower {
                    INTERVALS_MS.iter().copied().find(|&v| v > ms).unwrap_or(INTERVALS_MS[INTERVALS_MS.len() - 1])
                } else {
                    INTERVALS_MS.iter().rev().copied().find(|&v| v < ms).unwrap_or(INTERVALS_MS[0])
                };
                self.interval = Duration::from_millis(ms);
            }
            Action::ToggleHelp => self.help = !self.help,
        }
    }

    fn switch(&mut self, tab: Tab, model: &Model) {
        self.tab = tab;
        self.reselect(tab, model);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::testutil;
    use crate::tui::{RowId, rows_for};

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    #[test]
    fn keys_map_to_actions() {
        let app = App::default();
        let cases = [
            (ch('q'), Action::Quit),
            (key(KeyCode::Esc), Action::Quit),
            (KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), Action::Quit),
            (key(KeyCode::Tab), Action::NextTab),
            (KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT), Action::PrevTab),
            (ch('1'), Action::Tab(Tab::Goroutines)),
            (ch('3'), Action::Tab(Tab::Maps)),
            (ch('6'), Action::Tab(Tab::Findings)),
            (ch('7'), Action::Tab(Tab::Classes)),
            (ch('8'), Action::None),
            (key(KeyCode::Up), Action::Up),
            (ch('j'), Action::Down),
            (key(KeyCode::PageDown), Action::PageDown),
            (key(KeyCode::Home), Action::Home),
            (key(KeyCode::End), Action::End),
            (key(KeyCode::Enter), Action::ToggleDetail),
            (ch('s'), Action::NextSort),
            (ch('>'), Action::NextSort),
            (ch('<'), Action::PrevSort),
            (KeyEvent::new(KeyCode::Char('S'), KeyModifiers::SHIFT), Action::ReverseSort),
            (ch('/'), Action::StartFilter),
            (ch('p'), Action::TogglePause),
            (ch(' '), Action::TogglePause),
            (ch('+'), Action::Slower),
            (ch('-'), Action::Faster),
            (ch('?'), Action::ToggleHelp),
        ];
        for (k, want) in cases {
            assert_eq!(action(k, &app), want, "{k:?}");
        }
    }

    #[test]
    fn key_releases_do_nothing() {
        let mut k = ch('q');
        k.kind = KeyEventKind::Release;
        assert_eq!(action(k, &App::default()), Action::None);
    }

    #[test]
    fn filter_editing_takes_the_keys() {
        let app = App { filtering: true, ..App::default() };
        assert_eq!(action(ch('q'), &app), Action::FilterChar('q'));
        assert_eq!(action(ch('/'), &app), Action::FilterChar('/'));
        assert_eq!(action(key(KeyCode::Backspace), &app), Action::FilterBackspace);
        assert_eq!(action(key(KeyCode::Enter), &app), Action::FilterKeep);
        assert_eq!(action(key(KeyCode::Esc), &app), Action::FilterClear);
        assert_eq!(action(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), &app), Action::Quit);
    }

    #[test]
    fn esc_backs_out_one_step_at_a_time() {
        let mut app = App { help: true, detail: true, filter: "x".into(), ..App::default() };
        assert_eq!(action(key(KeyCode::Esc), &app), Action::ToggleHelp);
        assert_eq!(action(ch('j'), &app), Action::ToggleHelp);
        assert_eq!(action(ch('q'), &app), Action::Quit);
        app.help = false;
        assert_eq!(action(key(KeyCode::Esc), &app), Action::CloseDetail);
        app.detail = false;
        assert_eq!(action(key(KeyCode::Esc), &app), Action::FilterClear);
        app.filter.clear();
        assert_eq!(action(key(KeyCode::Esc), &app), Action::Quit);
    }

    #[test]
    fn typing_a_filter() {
        let m = testutil::model();
        let mut app = App::default();
        for k in [ch('/'), ch('i'), ch('n'), ch('t'), ch('6'), ch('4'), ch('x'), key(KeyCode::Backspace), key(KeyCode::Enter)] {
            let a = action(k, &app);
            app.apply(a, &m);
        }
        assert_eq!(app.filter, "int64");
        assert!(!app.filtering);
        assert_eq!(rows_for(Tab::Maps, &m, &app).len(), 1);
        app.apply(action(key(KeyCode::Esc), &app), &m);
        assert_eq!(app.filter, "");
        assert_eq!(rows_for(Tab::Maps, &m, &app).len(), 4);
    }

    #[test]
    fn sort_cycles_columns_with_natural_directions() {
        let m = testutil::model();
        let mut app = App::default();
        assert_eq!(app.sort[0], Sort { col: Some(3), desc: true });
        app.apply(Action::NextSort, &m);
        assert_eq!(app.sort[0], Sort { col: Some(4), desc: true });
        app.apply(Action::NextSort, &m);
        assert_eq!(app.sort[0], Sort { col: Some(5), desc: false });
        for _ in 0..6 {
            app.apply(Action::PrevSort, &m);
        }
        assert_eq!(app.sort[0], Sort { col: Some(6), desc: false });
        app.apply(Action::NextSort, &m);
        assert_eq!(app.sort[0], Sort { col: Some(0), desc: true });
        app.apply(Action::ReverseSort, &m);
        assert_eq!(app.sort[0], Sort { col: Some(0), desc: false });
        // Each view keeps its own order.
        assert_eq!(app.sort[2], rows::default_sort(Tab::Maps));
        assert_eq!(app.sort[5], Sort { col: None, desc: false });
    }

    #[test]
    fn moving_is_clamped() {
        let m = testutil::model();
        let mut app = App::default();
        app.apply(Action::Up, &m);
        assert_eq!(app.selected[0], 0);
        app.apply(Action::End, &m);
        assert_eq!(app.selected[0], 4);
        assert_eq!(app.selected_id[0], Some(RowId::Goroutine { pid: testutil::PID, goid: 11 }));
        app.apply(Action::Down, &m);
        assert_eq!(app.selected[0], 4);
        app.apply(Action::PageUp, &m);
        assert_eq!(app.selected[0], 0);
        app.page = 2;
        app.apply(Action::PageDown, &m);
        assert_eq!(app.selected[0], 2);
        // Views keep their own selection.
        app.apply(Action::Tab(Tab::Maps), &m);
        assert_eq!(app.selected[2], 0);
        app.apply(Action::Tab(Tab::Goroutines), &m);
        assert_eq!(app.selected[0], 2);
    }

    #[test]
    fn toggles_and_interval_bounds() {
        let m = testutil::model();
        let mut app = App::default();
        app.apply(Action::TogglePause, &m);
        assert!(app.paused);
        app.apply(Action::ToggleDetail, &m);
        assert!(app.detail);
        app.apply(Action::ToggleHelp, &m);
        assert!(app.help);
        app.apply(Action::Slower, &m);
        assert_eq!(app.interval, Duration::from_secs(2));
        for _ in 0..20 {
            app.apply(Action::Slower, &m);
        }
        assert_eq!(app.interval, Duration::from_secs(10));
        for _ in 0..20 {
            app.apply(Action::Faster, &m);
        }
        assert_eq!(app.interval, Duration::from_millis(100));
        app.apply(Action::NextTab, &m);
        app.apply(Action::PrevTab, &m);
        app.apply(Action::PrevTab, &m);
        assert_eq!(app.tab, Tab::Classes, "wraps from the first view to the last");
        app.apply(Action::PrevTab, &m);
        assert_eq!(app.tab, Tab::Findings);
        app.apply(Action::Quit, &m);
        assert!(app.quit);
    }
}
