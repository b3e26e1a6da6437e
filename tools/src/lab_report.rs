//! The concept lab's report (`cargo lab demo all`): every demo's output,
//! and first a table of the ten concepts of concurrent I/O × the three
//! models, each cell a headline figure a demo measured in this run.
//!
//! Demos print through [`say`], which also keeps what they print while a
//! capture is on, so the report holds exactly the tables the terminal
//! showed. Each demo returns its [`Finding`]s: a figure for one concept in
//! one model (or why the concept does not apply there). A cell no demo
//! filled says so: nothing is filled in by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Result;

use crate::options::Model;
use crate::workspace;

/// The ten concepts, in the seeds' order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Concept {
    Scheduler,
    Multiplexing,
    Backpressure,
    ExecutionUnits,
    Ownership,
    Blocking,
    Isolation,
    Fairness,
    Ordering,
    Bounding,
}

impl Concept {
    pub const EACH: [Concept; 10] = [
        Concept::Scheduler,
        Concept::Multiplexing,
        Concept::Backpressure,
        Concept::ExecutionUnits,
        Concept::Ownership,
        Concept::Blocking,
        Concept::Isolation,
        Concept::Fairness,
        Concept::Ordering,
        Concept::Bounding,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Concept::Scheduler => "scheduler",
            Concept::Multiplexing => "I/O multiplexing",
            Concept::Backpressure => "backpressure",
            Concept::ExecutionUnits => "execution units",
            Concept::Ownership => "memory ownership",
            Concept::Blocking => "blocking semantics",
            Concept::Isolation => "failure isolation",
            Concept::Fairness => "fairness",
            Concept::Ordering => "ordering",
            Concept::Bounding => "resource bounding",
        }
    }
}

/// The models of the table's columns.
pub const MODELS: [Model; 3] = [Model::Reactor, Model::Csp, Model::Actor];

/// One cell: what a demo measured for `concept` in `model`.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub concept: Concept,
    pub model: Model,
    pub text: String,
}

impl Finding {
    pub fn new(concept: Concept, model: Model, text: impl Into<String>) -> Finding {
        Finding { concept, model, text: text.into() }
    }
}

static CAPTURE: Mutex<Option<String>> = Mutex::new(None);

/// Prints a line of a demo's output (and keeps it while capturing).
pub fn say(line: impl std::fmt::Display) {
    let line = line.to_string();
    println!("{line}");
    if let Some(captured) = CAPTURE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        captured.push_str(&line);
        captured.push('\n');
    }
}

/// `println!` for demos: prints and, while capturing, keeps the line.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::lab_report::say(format!($($arg)*))
    };
}

/// Starts keeping what [`say`] prints.
pub fn start_capture() {
    *CAPTURE.lock().unwrap_or_else(|e| e.into_inner()) = Some(String::new());
}

/// What [`say`] printed since [`start_capture`]; stops capturing.
pub fn take_capture() -> String {
    CAPTURE.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default()
}

/// One demo's part of the report.
pub struct Section {
    pub title: String,
    /// What it printed.
    pub output: String,
    /// Why it did not run, if it did not.
    pub error: Option<String>,
}

/// The 10 × 3 table (Markdown) of `findings`; several findings for a cell
/// are joined, an empty cell says no demo measured it.
pub fn concept_table(findings: &[Finding]) -> String {
    let mut cells: BTreeMap<(Concept, &'static str), Vec<&str>> = BTreeMap::new();
    for finding in findings {
        cells.entry((finding.concept, finding.model.name())).or_default().push(&finding.text);
    }
    let mut table = String::from(
        "| concept | reactor (event loop) | csp (threads + channels) | actor (isolated tasks + mailboxes) |\n|---|---|---|---|\n",
    );
    for concept in Concept::EACH {
        let _ = write!(table, "| **{}** |", concept.name());
        for model in MODELS {
            let text = match cells.get(&(concept, model.name())) {
                Some(texts) => texts.join("; "),
                None => "— not measured by a demo yet".to_string(),
            };
            let _ = write!(table, " {} |", text.replace('|', "/"));
        }
        table.push('\n');
    }
    table
}

/// Writes `target/lab/report.md`: the concept table, then each demo's
/// output and plots. Returns its path.
pub fn write(sections: &[Section], findings: &[Finding], conditions: &str) -> Result<PathBuf> {
    let dir = workspace::target_dir().join("lab");
    std::fs::create_dir_all(&dir)?;
    let mut report = String::from("# Tenfold concept lab\n\n");
    let _ = writeln!(report, "Written by `cargo lab demo all` ({conditions}).\n");
    let _ = writeln!(
        report,
        "Ten concepts of concurrent I/O in three models on one kernel: each cell is a figure measured in this run (or why the concept does not apply there).\n"
    );
    report.push_str(&concept_table(findings));
    for section in sections {
        let _ = writeln!(report, "\n## {}\n", section.title);
        if let Some(error) = &section.error {
            let _ = writeln!(report, "**Did not run:** {error}\n");
        }
        let mut plots = Vec::new();
        let mut text = String::new();
        for line in section.output.lines() {
            // "plot: a.svg and a.png": the PNG goes into the report.
            if let Some(png) = line.strip_prefix("plot: ").and_then(|rest| rest.split(" and ").nth(1)) {
                let name = std::path::Path::new(png).file_name().map(|n| n.to_string_lossy().into_owned());
                plots.extend(name);
            }
            text.push_str(line);
            text.push('\n');
        }
        if !text.is_empty() {
            let _ = writeln!(report, "```text\n{}```", text);
        }
        for plot in plots {
            let _ = writeln!(report, "\n![{plot}]({plot})");
        }
    }
    let path = dir.join("report.md");
    std::fs::write(&path, report)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_concept_and_model_and_says_what_is_missing() {
        let findings = [
            Finding::new(Concept::Blocking, Model::Reactor, "froze 4/4 for 310 ms"),
            Finding::new(Concept::Blocking, Model::Csp, "others p99 2 ms"),
            Finding::new(Concept::Blocking, Model::Csp, "a | b"),
        ];
        let table = concept_table(&findings);
        assert_eq!(table.lines().count(), 12, "{table}");
        let blocking = table.lines().find(|line| line.contains("blocking semantics")).unwrap();
        assert!(blocking.contains("| froze 4/4 for 310 ms |"), "{blocking}");
        assert!(blocking.contains("others p99 2 ms; a / b"), "{blocking}");
        assert!(blocking.ends_with("— not measured by a demo yet |"), "{blocking}");
        let ordering = table.lines().find(|line| line.contains("**ordering**")).unwrap();
        assert_eq!(ordering.matches("not measured").count(), 3);
    }

    #[test]
    fn capture_keeps_what_is_said_only_while_on() {
        say("before");
        start_capture();
        say!("kept {}", 1);
        assert_eq!(take_capture(), "kept 1\n");
        say("after");
        assert_eq!(take_capture(), "");
    }
}
