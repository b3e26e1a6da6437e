//! Progress for long `cargo lab` runs: a bar (a known number of steps) or a
//! spinner (a wait of unknown length) on stderr, only when stderr is a
//! terminal and `CI` is unset; otherwise nothing is drawn.
//!
//! Tables and headlines go to stdout untouched: a line printed while a bar
//! is up goes through [`Progress::println`] or [`note`], which take the bar
//! off the screen for that moment. One bar is up at a time: one started
//! while another is up stays hidden (a spinner inside a stepped run).

use std::borrow::Cow;
use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The bar on the screen, if any.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// How often a spinner turns (and its elapsed time is redrawn).
const TICK: Duration = Duration::from_millis(120);

/// A bar or spinner, cleared from the screen when dropped.
pub struct Progress {
    /// `None` when nothing is drawn (no terminal, CI, or another bar is up).
    bar: Option<ProgressBar>,
}

/// Whether to draw: a terminal on stderr that can move its cursor, and not CI.
fn wanted() -> bool {
    decide(
        std::io::stderr().is_terminal(),
        std::env::var_os("CI").is_some(),
        std::env::var_os("TERM").is_some_and(|term| term == "dumb"),
    )
}

fn decide(stderr_is_terminal: bool, ci: bool, dumb_terminal: bool) -> bool {
    stderr_is_terminal && !ci && !dumb_terminal
}

fn shown() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    // A panic elsewhere while holding the lock leaves a plain Option behind.
    SHOWN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Progress {
    /// A bar of `total` steps, labelled `what` (drawn on stderr, indicatif's default).
    pub fn steps(total: u64, what: &str) -> Progress {
        let style =
            ProgressStyle::with_template("{spinner} {prefix} [{bar:20}] {pos}/{len} {wide_msg} {elapsed:>4}")
                .expect("a valid template")
                .progress_chars("=> ");
        Self::show(ProgressBar::new(total), style, what, wanted())
    }

    /// A spinner with the time elapsed, labelled `what`.
    pub fn spinner(what: &str) -> Progress {
        let style = ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed:>4}")
            .expect("a valid template");
        Self::show(ProgressBar::new_spinner(), style, what, wanted())
    }

    fn show(bar: ProgressBar, style: ProgressStyle, what: &str, draw: bool) -> Progress {
        let mut shown = shown();
        if !draw || shown.is_some() {
            return Progress { bar: None };
        }
        let bar = bar.with_style(style).with_prefix(format!("lab: {what}"));
        bar.enable_steady_tick(TICK);
        *shown = Some(bar.clone());
        Progress { bar: Some(bar) }
    }

    /// Whether this one is on the screen.
    pub fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// Names the step now running: on the bar when drawn, otherwise as the
    /// `lab: <what>...` line on stderr the lab logs its phases with.
    pub fn start(&self, what: impl Into<Cow<'static, str>>) {
        match &self.bar {
            Some(bar) => bar.set_message(what),
            None => eprintln!("lab: {}...", what.into()),
        }
    }

    /// Shows `text` on the bar, if drawn (nothing otherwise).
    pub fn message(&self, text: impl Into<Cow<'static, str>>) {
        if let Some(bar) = &self.bar {
            bar.set_message(text);
        }
    }

    /// One step done.
    pub fn step(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Prints `line` to stdout (a table row), with the bar off the screen.
    pub fn println(&self, line: impl Display) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            *shown() = None;
        }
    }
}

/// Prints `lab: <text>` to stderr, above the bar if one is up.
pub fn note(text: impl Display) {
    let bar = shown().clone();
    match bar {
        Some(bar) => bar.suspend(|| eprintln!("lab: {text}")),
        None => eprintln!("lab: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::ProgressDrawTarget;

    #[test]
    fn draws_only_on_a_terminal_outside_ci() {
        assert!(decide(true, false, false));
        assert!(!decide(false, false, false));
        assert!(!decide(true, true, false));
        assert!(!decide(true, false, true));
    }

    #[test]
    fn one_bar_at_a_time_and_none_after_drop() {
        // Drawn to a hidden target, so the test prints nothing.
        let quiet = || ProgressBar::with_draw_target(Some(3), ProgressDrawTarget::hidden());
        let style = ProgressStyle::default_bar;
        let outer = Progress::show(quiet(), style(), "outer", true);
        assert!(outer.is_drawn());
        let inner = Progress::show(quiet(), style(), "inner", true);
        assert!(!inner.is_drawn(), "a second bar while one is up");
        drop(inner);
        assert!(shown().is_some(), "dropping the hidden one keeps the drawn one");
        drop(outer);
        assert!(shown().is_none());
        assert!(!Progress::show(quiet(), style(), "off", false).is_drawn());
    }
}
