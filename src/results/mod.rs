//! What a run found, as data: the events a lab emits while it runs (a step began, a
//! check held or failed, the lab was skipped, it ended) folded into a [`LabReport`]
//! — the one record the three report writers (JSON, TAP, JUnit) and `netlab test`'s
//! summary read.
//!
//! `netlab run` folds its own events; under `netlab test` each lab's `netlab run`
//! also appends them, one JSON object per line, to a file the runner reads back, so
//! a lab killed at its timeout is still reported with the step it was in.

pub mod json;
pub mod junit;
pub mod tap;

use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One thing that happened in a lab, in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step began (numbered from 1).
    Step { number: usize, title: String, line: usize },
    /// The current step ended.
    StepEnd { outcome: StepOutcome, seconds: f64 },
    /// A check held or failed (`reason`: why it failed).
    Check {
        passed: bool,
        text: String,
        line: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The lab said the rest of it cannot run here (`skip()`, `requires()`).
    Skip { reason: String, line: usize },
    /// The lab ended.
    End(Ending),
}

/// How a lab ended, as `netlab run` saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ending {
    pub outcome: Outcome,
    pub exit_code: i32,
    /// The diagnostic's one-line message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The diagnostic as printed (source excerpt and help), without colours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The line of the lab it points at (0: none).
    #[serde(default)]
    pub line: usize,
    pub seconds: f64,
    /// The release of the kernel the lab ran on (`uname -r`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
}

/// The outcome of a lab.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// A check failed (exit 1).
    Failed,
    /// The lab is wrong (exit 2) or the machine lacks something (exit 3).
    Error,
    /// The lab said it cannot run here; nothing failed (exit 0).
    Skipped,
    /// Killed at its time limit (`netlab test --timeout`).
    Timeout,
    /// Stopped by SIGINT/SIGTERM.
    Interrupted,
}

impl Outcome {
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Passed | Outcome::Skipped)
    }

    pub fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "PASS",
            Outcome::Failed => "FAIL",
            Outcome::Error => "ERROR",
            Outcome::Skipped => "SKIP",
            Outcome::Timeout => "TIMEOUT",
            Outcome::Interrupted => "INTERRUPTED",
        }
    }
}

/// The outcome of a step.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Passed,
    Failed,
    Error,
    Skipped,
    /// Still running when the lab was killed (timeout, signal).
    Unfinished,
}

/// A check, as reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckReport {
    pub passed: bool,
    pub text: String,
    pub line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A step, or the code outside every step (`number` 0, no title).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepReport {
    pub number: usize,
    pub title: String,
    pub line: usize,
    pub outcome: StepOutcome,
    pub seconds: f64,
    pub checks: Vec<CheckReport>,
    /// Why it did not pass: the failure's message, the skip's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The diagnostic as printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The line the failure or skip points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_line: Option<usize>,
}

/// Everything known about one lab's run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabReport {
    /// The lab file, as given on the command line.
    pub path: String,
    pub outcome: Outcome,
    pub exit_code: i32,
    pub seconds: f64,
    /// Why it did not pass (the failure's message, the skip's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The line of the lab the message points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Steps in the order they ran; number 0 is the code outside every step,
    /// present when it made checks or stopped the lab.
    pub steps: Vec<StepReport>,
    /// What the lab printed (its human output and diagnostics).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// The release of the kernel the lab ran on (`uname -r`): this machine's, or
    /// the one `--kernel IMAGE` booted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernel: String,
}

impl StepReport {
    /// The name reports give it: "2. Bring both ends up", or the code outside steps.
    pub fn name(&self) -> String {
        if self.number == 0 {
            "(code outside steps)".into()
        } else {
            format!("{}. {}", self.number, self.title)
        }
    }
}

impl LabReport {
    /// The test cases of the lab: its steps, or, for a lab without any, the code
    /// outside steps with the lab's own outcome.
    pub fn cases(&self) -> Vec<StepReport> {
        if !self.steps.is_empty() {
            return self.steps.clone();
        }
        let outcome = match self.outcome {
            Outcome::Passed => StepOutcome::Passed,
            Outcome::Skipped => StepOutcome::Skipped,
            Outcome::Failed => StepOutcome::Failed,
            Outcome::Error => StepOutcome::Error,
            Outcome::Timeout | Outcome::Interrupted => StepOutcome::Unfinished,
        };
        vec![StepReport {
            number: 0,
            title: String::new(),
            line: 0,
            outcome,
            seconds: self.seconds,
            checks: Vec::new(),
            message: self.message.clone(),
            detail: None,
            at_line: self.line,
        }]
    }

    pub fn checks(&self) -> impl Iterator<Item = &CheckReport> {
        self.steps.iter().flat_map(|s| s.checks.iter())
    }

    /// "file:line" of what the message points at.
    pub fn location(&self) -> Option<String> {
        self.line.filter(|l| *l > 0).map(|l| format!("{}:{l}", self.path))
    }
}

/// Folds events into a [`LabReport`].
#[derive(Debug, Clone)]
pub struct Fold {
    report: LabReport,
    /// Index in `steps` of the step running now.
    open: Option<usize>,
    skip: Option<(String, usize)>,
    ended: bool,
}

impl Fold {
    pub fn new(path: &str) -> Fold {
        Fold {
            report: LabReport {
                path: path.to_string(),
                outcome: Outcome::Passed,
                exit_code: 0,
                seconds: 0.0,
                message: None,
                line: None,
                steps: Vec::new(),
                output: String::new(),
                // Whoever folds the events runs on the lab's kernel (`netlab test
                // --kernel` folds inside the VM); an ending that says otherwise wins.
                kernel: kernel_release(),
            },
            open: None,
            skip: None,
            ended: false,
        }
    }

    /// The step running now, as "2. Bring both ends up".
    pub fn current_step(&self) -> Option<String> {
        self.open.map(|i| &self.report.steps[i]).map(|s| format!("{}. {}", s.number, s.title))
    }

    /// The step checks and failures go to: the open one, or the code outside steps.
    fn target(&mut self) -> &mut StepReport {
        if let Some(i) = self.open {
            return &mut self.report.steps[i];
        }
        if self.report.steps.first().is_none_or(|s| s.number != 0) {
            self.report.steps.insert(
                0,
                StepReport {
                    number: 0,
                    title: String::new(),
                    line: 0,
                    outcome: StepOutcome::Passed,
                    seconds: 0.0,
                    checks: Vec::new(),
                    message: None,
                    detail: None,
                    at_line: None,
                },
            );
            if let Some(i) = self.open.as_mut() {
                *i += 1;
            }
        }
        &mut self.report.steps[0]
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Step { number, title, line } => {
                self.report.steps.push(StepReport {
                    number: *number,
                    title: title.clone(),
                    line: *line,
                    outcome: StepOutcome::Unfinished,
                    seconds: 0.0,
                    checks: Vec::new(),
                    message: None,
                    detail: None,
                    at_line: None,
                });
                self.open = Some(self.report.steps.len() - 1);
            }
            Event::StepEnd { outcome, seconds } => {
                if let Some(i) = self.open.take() {
                    let step = &mut self.report.steps[i];
                    step.outcome = *outcome;
                    step.seconds = *seconds;
                    if *outcome == StepOutcome::Skipped {
                        if let Some((reason, line)) = &self.skip {
                            step.message = Some(reason.clone());
                            step.at_line = Some(*line);
                        }
                    }
                }
            }
            Event::Check { passed, text, line, reason } => {
                let check = CheckReport { passed: *passed, text: text.clone(), line: *line, reason: reason.clone() };
                self.target().checks.push(check);
            }
            Event::Skip { reason, line } => {
                self.skip = Some((reason.clone(), *line));
            }
            Event::End(end) => self.end(end),
        }
    }

    fn end(&mut self, end: &Ending) {
        self.ended = true;
        let r = &mut self.report;
        r.outcome = end.outcome;
        r.exit_code = end.exit_code;
        r.seconds = end.seconds;
        r.message = end.message.clone();
        r.line = (end.line > 0).then_some(end.line);
        if let Some(kernel) = &end.kernel {
            r.kernel = kernel.clone();
        }
        if let Some((reason, line)) = &self.skip {
            if end.outcome == Outcome::Skipped {
                r.message = Some(reason.clone());
                r.line = Some(*line);
            }
        }
        if end.outcome == Outcome::Passed || end.outcome == Outcome::Skipped {
            // A skip outside every step: the code outside steps is where it happened.
            if end.outcome == Outcome::Skipped && !self.report.steps.iter().any(|s| s.outcome == StepOutcome::Skipped) {
                let (message, line) = (self.report.message.clone(), self.report.line);
                let target = self.target();
                target.outcome = StepOutcome::Skipped;
                target.message = message;
                target.at_line = line;
            }
            return;
        }
        // The failure belongs to the step that failed, or to the code outside steps.
        let failed_step = self.report.steps.iter().rposition(|s| {
            s.number > 0 && matches!(s.outcome, StepOutcome::Failed | StepOutcome::Error | StepOutcome::Unfinished)
        });
        let outcome = match end.outcome {
            Outcome::Failed => StepOutcome::Failed,
            // A step a signal stopped did not fail; it did not finish.
            Outcome::Interrupted => StepOutcome::Unfinished,
            _ => StepOutcome::Error,
        };
        let (message, detail, line) = (end.message.clone(), end.detail.clone(), self.report.line);
        let target = match (self.open, failed_step) {
            (Some(i), _) | (None, Some(i)) => &mut self.report.steps[i],
            (None, None) => self.target(),
        };
        if matches!(target.outcome, StepOutcome::Passed | StepOutcome::Unfinished) {
            target.outcome = outcome;
        }
        target.message = message;
        target.detail = detail;
        target.at_line = line;
        self.open = None;
    }

    /// The lab ended without saying how (killed, or its runner died): what the
    /// runner saw instead.
    pub fn end_abruptly(&mut self, outcome: Outcome, exit_code: i32, message: String, took: Duration) {
        let step = self.current_step();
        let message = match step {
            Some(step) => format!("{message} in step {step}"),
            None => message,
        };
        if let Some(i) = self.open {
            let s = &mut self.report.steps[i];
            s.outcome = StepOutcome::Unfinished;
            s.seconds = took.as_secs_f64();
        }
        let end = Ending {
            outcome,
            exit_code,
            message: Some(message),
            detail: None,
            line: 0,
            seconds: took.as_secs_f64(),
            kernel: None,
        };
        // Recorded like an ending, with the unfinished step as the one it happened in.
        let open = self.open;
        self.end(&end);
        if let Some(i) = open {
            self.report.steps[i].outcome = StepOutcome::Unfinished;
        }
    }

    /// Whether the lab said how it ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn finish(mut self, output: String) -> LabReport {
        self.report.output = output;
        self.report
    }
}

/// Where a run's events go: kept for the run's own report, and appended to a file
/// (`netlab run --events FILE`, used by `netlab test`) as they happen.
pub struct Events {
    fold: Fold,
    file: Option<Rc<std::fs::File>>,
    started: Instant,
}

impl Events {
    pub fn new(path: &str, file: Option<Rc<std::fs::File>>) -> Events {
        Events { fold: Fold::new(path), file, started: Instant::now() }
    }

    pub fn emit(&mut self, event: Event) {
        if let Some(file) = &self.file {
            if let Ok(mut line) = serde_json::to_vec(&event) {
                line.push(b'\n');
                // One write per event: the reader sees whole lines even if we are killed.
                let _ = (&**file).write_all(&line);
            }
        }
        self.fold.apply(&event);
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn report(&self, output: String) -> LabReport {
        self.fold.clone().finish(output)
    }
}

/// The release of the running kernel (`uname -r`), "unknown" if it cannot be read.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Reads the events a lab appended to `path` (lines that do not parse — a line cut
/// by a kill — are left out).
pub fn read_events(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Counts by outcome, for summaries.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    pub labs: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
    pub timeouts: usize,
    pub interrupted: usize,
    pub checks_passed: usize,
    pub checks_failed: usize,
    /// The tasks of exercises (labs/exercises/) run without a solution: "not yet",
    /// not failed checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tasks_not_yet: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Totals {
    pub fn of(labs: &[LabReport]) -> Totals {
        let mut t = Totals { labs: labs.len(), ..Totals::default() };
        for lab in labs {
            match lab.outcome {
                Outcome::Passed => t.passed += 1,
                Outcome::Failed => t.failed += 1,
                Outcome::Error => t.errors += 1,
                Outcome::Skipped => t.skipped += 1,
                Outcome::Timeout => t.timeouts += 1,
                Outcome::Interrupted => t.interrupted += 1,
            }
            for c in lab.checks() {
                if c.passed {
                    t.checks_passed += 1;
                } else if lab.outcome == Outcome::Passed {
                    // Only an exercise passes with a check that did not: a task not done yet.
                    t.tasks_not_yet += 1;
                } else {
                    t.checks_failed += 1;
                }
            }
        }
        t
    }
}

/// The report formats `--format` takes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Steps and checks as they run (the default).
    #[default]
    Human,
    /// One JSON document (schema "netlab-report", version 1) on stdout at the end.
    Json,
    /// TAP version 14 on stdout: a test point per lab, its steps as a subtest.
    Tap,
}

/// A `--junit FILE`, opened (created empty) before the run: a path that cannot be
/// written is said at once, and the file is reachable whatever the sandbox mounts.
pub struct JunitFile {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl JunitFile {
    pub fn create(path: &Path) -> Result<JunitFile, i32> {
        match std::fs::File::create(path) {
            Ok(file) => Ok(JunitFile { path: path.to_path_buf(), file }),
            Err(e) => {
                eprintln!("netlab: --junit {}: {e}", path.display());
                Err(2)
            }
        }
    }
}

/// Writes the reports asked for: `format` to stdout (human output is printed as
/// the run goes), the JUnit XML to its file. A report that cannot be written is
/// the machine's problem (exit 3).
pub fn write_reports(labs: &[LabReport], seconds: f64, format: Format, junit: Option<&JunitFile>) -> Result<(), i32> {
    let text = match format {
        Format::Human => None,
        Format::Json => Some(json::render(labs, seconds)),
        Format::Tap => Some(tap::render(labs)),
    };
    if let Some(text) = text {
        let mut out = std::io::stdout().lock();
        if out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_err() {
            return Err(3);
        }
    }
    if let Some(j) = junit {
        let xml = junit::render(labs);
        let mut file = &j.file;
        if let Err(e) = file.write_all(xml.as_bytes()).and_then(|_| file.flush()) {
            eprintln!("netlab: cannot write the JUnit report to {}: {e}", j.path.display());
            return Err(3);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: usize, t: &str) -> Event {
        Event::Step { number: n, title: t.into(), line: n * 10 }
    }

    fn check(passed: bool, line: usize) -> Event {
        Event::Check { passed, text: format!("check at {line}"), line, reason: None }
    }

    #[test]
    fn a_failed_check_belongs_to_its_step() {
        let mut f = Fold::new("x.rhai");
        for e in [
            step(1, "one"),
            check(true, 11),
            Event::StepEnd { outcome: StepOutcome::Passed, seconds: 0.1 },
            step(2, "two"),
            check(false, 21),
            Event::StepEnd { outcome: StepOutcome::Failed, seconds: 0.2 },
        ] {
            f.apply(&e);
        }
        f.apply(&Event::End(Ending {
            outcome: Outcome::Failed,
            exit_code: 1,
            message: Some("check failed".into()),
            detail: None,
            line: 21,
            seconds: 0.3,
            kernel: None,
        }));
        let r = f.finish(String::new());
        assert_eq!(r.steps.len(), 2);
        assert_eq!(r.steps[1].outcome, StepOutcome::Failed);
        assert_eq!(r.steps[1].at_line, Some(21));
        assert_eq!(r.steps[0].outcome, StepOutcome::Passed);
        assert_eq!(r.location().as_deref(), Some("x.rhai:21"));
    }

    #[test]
    fn an_error_outside_steps_gets_its_own_entry() {
        let mut f = Fold::new("x.rhai");
        f.apply(&step(1, "one"));
        f.apply(&Event::StepEnd { outcome: StepOutcome::Passed, seconds: 0.1 });
        f.apply(&Event::End(Ending {
            outcome: Outcome::Error,
            exit_code: 2,
            message: Some("unknown function".into()),
            detail: None,
            line: 30,
            seconds: 0.3,
            kernel: None,
        }));
        let r = f.finish(String::new());
        assert_eq!(r.steps[0].number, 0);
        assert_eq!(r.steps[0].outcome, StepOutcome::Error);
        assert_eq!(r.steps[1].outcome, StepOutcome::Passed);
    }

    #[test]
    fn a_killed_lab_names_the_step_it_was_in() {
        let mut f = Fold::new("x.rhai");
        f.apply(&step(1, "forever"));
        f.end_abruptly(Outcome::Timeout, 1, "timed out after 5 s".into(), Duration::from_secs(5));
        let r = f.finish(String::new());
        assert_eq!(r.outcome, Outcome::Timeout);
        assert_eq!(r.message.as_deref(), Some("timed out after 5 s in step 1. forever"));
        assert_eq!(r.steps[0].outcome, StepOutcome::Unfinished);
        assert_eq!(r.steps[0].message.as_deref(), Some("timed out after 5 s in step 1. forever"));
    }

    #[test]
    fn events_survive_a_round_trip() {
        let e = Event::Skip { reason: "no vlan".into(), line: 3 };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(text, r#"{"event":"skip","reason":"no vlan","line":3}"#);
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
    }
}
