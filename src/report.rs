//! Human output of a run: each step with its checks, result and time, then one
//! summary line. Diagnostics go to stderr; this goes to stdout.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::results::{Event, Events, StepOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepResult {
    Passed,
    Failed,
    Error,
    /// The lab said the rest cannot run here (`skip()`, `requires()`).
    Skipped,
    /// A stop signal (SIGINT, SIGTERM, SIGHUP) ended it.
    Interrupted,
}

struct Step {
    title: String,
    started: Instant,
    ended: Option<Instant>,
    result: Option<StepResult>,
}

pub struct Reporter {
    steps: Vec<Step>,
    /// "2. Bring both ends up" once a step has failed.
    failed_step: Option<String>,
    checks_passed: usize,
    started: Instant,
    /// key=value pairs from metric(), for the benchmark line.
    metrics: Vec<(String, String)>,
    /// Print nothing (`export`, `graph`, `check` run the lab only for its ops).
    pub silent: bool,
    /// Print to stderr: stdout carries a machine-readable report (`--format`).
    pub to_stderr: bool,
    /// What happened, as data, for the reports (and `--events FILE`).
    pub events: Events,
    /// Every line printed, for the reports' output (kept only with `keep_transcript`).
    pub transcript: std::cell::RefCell<String>,
    pub keep_transcript: bool,
}

pub fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter {
            steps: Vec::new(),
            failed_step: None,
            checks_passed: 0,
            started: Instant::now(),
            metrics: Vec::new(),
            silent: false,
            to_stderr: false,
            events: Events::new("", None),
            transcript: Default::default(),
            keep_transcript: false,
        }
    }
}

impl Reporter {
    fn emit(&self, line: &str) {
        if self.silent {
            return;
        }
        if self.keep_transcript {
            let mut t = self.transcript.borrow_mut();
            t.push_str(line);
            t.push('\n');
        }
        if self.to_stderr {
            let mut out = std::io::stderr().lock();
            let _ = writeln!(out, "{line}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    /// Numbers the next steps from 1 again: each `check` of `netlab exercise` is a
    /// grading of its own.
    pub fn restart_steps(&mut self) {
        self.steps.clear();
        self.failed_step = None;
    }

    pub fn begin_step(&mut self, title: &str, line: usize) {
        self.steps.push(Step { title: title.to_string(), started: Instant::now(), ended: None, result: None });
        let number = self.steps.len();
        self.events.emit(Event::Step { number, title: title.to_string(), line });
        self.emit(&format!("── {number}. {title}"));
    }

    pub fn end_step(&mut self, result: StepResult) {
        let number = self.steps.len();
        let Some(step) = self.steps.last_mut() else {
            return;
        };
        step.result = Some(result);
        step.ended = Some(Instant::now());
        if matches!(result, StepResult::Failed | StepResult::Error | StepResult::Interrupted)
            && self.failed_step.is_none()
        {
            self.failed_step = Some(format!("{number}. {}", step.title));
        }
        let elapsed = step.started.elapsed();
        let took = fmt_duration(elapsed);
        let (line, outcome) = match result {
            StepResult::Passed => (format!("   passed in {took}"), StepOutcome::Passed),
            StepResult::Failed => (format!("   FAILED after {took}"), StepOutcome::Failed),
            StepResult::Error => (format!("   ERROR after {took}"), StepOutcome::Error),
            StepResult::Skipped => (format!("   skipped after {took}"), StepOutcome::Skipped),
            StepResult::Interrupted => (format!("   INTERRUPTED after {took}"), StepOutcome::Unfinished),
        };
        self.events.emit(Event::StepEnd { outcome, seconds: elapsed.as_secs_f64() });
        self.emit(&line);
    }

    /// The number and title of the last step that ended, as (2, "Bring both ends up").
    pub fn last_step(&self) -> Option<(usize, String)> {
        self.steps.iter().enumerate().rev().find(|(_, s)| s.result.is_some()).map(|(i, s)| (i + 1, s.title.clone()))
    }

    /// The step currently running, as "2. Bring both ends up".
    pub fn current_step(&self) -> Option<String> {
        let (i, step) = self.steps.iter().enumerate().rev().find(|(_, s)| s.result.is_none())?;
        Some(format!("{}. {}", i + 1, step.title))
    }

    pub fn metric(&mut self, name: &str, value: &str) {
        self.metrics.retain(|(k, _)| k != name);
        self.metrics.push((name.to_string(), value.to_string()));
    }

    /// The benchmark line: step durations as `<title>_s=`, then the metrics.
    pub fn results_line(&self, extra: &[(&str, String)]) -> String {
        let mut parts: Vec<String> = vec!["impl=netlab".into()];
        parts.extend(self.metrics.iter().filter(|(k, _)| k == "n").map(|(k, v)| format!("{k}={v}")));
        for s in &self.steps {
            let key: String = s.title.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            let took = s.ended.map(|e| e.duration_since(s.started)).unwrap_or_default();
            parts.push(format!("{key}_s={:.4}", took.as_secs_f64()));
        }
        parts.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
        parts.extend(self.metrics.iter().filter(|(k, _)| k != "n").map(|(k, v)| format!("{k}={v}")));
        parts.join(" ")
    }

    /// The step where the lab stopped: the failed one, or the one still running.
    pub fn stopped_in(&self) -> Option<String> {
        self.failed_step.clone().or_else(|| self.current_step())
    }

    pub fn check_passed(&mut self, what: &str, line: usize) {
        self.checks_passed += 1;
        self.events.emit(Event::Check { passed: true, text: what.to_string(), line, reason: None });
        let indent = if self.current_step().is_some() { "   " } else { "" };
        self.emit(&format!("{indent}✓ {what}"));
    }

    /// A failed check: `title` what was checked, `reason` why it did not hold.
    pub fn check_failed(&mut self, title: &str, reason: &str, line: usize) {
        let what = format!("{title}: {reason}");
        self.events.emit(Event::Check { passed: false, text: title.to_string(), line, reason: Some(reason.into()) });
        let indent = if self.current_step().is_some() { "   " } else { "" };
        self.emit(&format!("{indent}✗ {what}"));
    }

    /// The lab skips the rest of itself (`skip()`, `requires()`).
    pub fn skipped(&mut self, reason: &str, line: usize) {
        self.events.emit(Event::Skip { reason: reason.to_string(), line });
        let indent = if self.current_step().is_some() { "   " } else { "" };
        self.emit(&format!("{indent}⊘ skipped: {reason}"));
    }

    /// The commands equivalent to what netlab just did (`--explain`, `plan`).
    pub fn explain(&self, commands: &[String]) {
        let indent = if self.current_step().is_some() { "   " } else { "" };
        for command in commands {
            self.emit(&format!("{indent}$ {command}"));
        }
    }

    /// What a step changed in the kernel (`--diff`).
    pub fn changes(&self, changes: &[String]) {
        let indent = if self.current_step().is_some() { "   " } else { "" };
        if changes.is_empty() {
            self.emit(&format!("{indent}Δ nothing changed"));
        }
        for change in changes {
            self.emit(&format!("{indent}Δ {change}"));
        }
    }

    /// A check the model recorded without making it (`plan`, `check`).
    pub fn check_planned(&mut self, what: &str) {
        let indent = if self.current_step().is_some() { "   " } else { "" };
        self.emit(&format!("{indent}? {what}"));
    }

    pub fn print(&self, text: &str) {
        let indent = if self.current_step().is_some() { "   " } else { "" };
        for line in text.lines() {
            self.emit(&format!("{indent}│ {line}"));
        }
    }

    /// A line as it is, outside any step (an exercise's score).
    pub fn print_plain(&self, text: &str) {
        self.emit(text);
    }

    /// The closing line: "PASS path: 2 steps, 5 checks in 0.61 s".
    pub fn summary(&self, path: &str, verdict: &str, reason: Option<&str>) {
        let steps = self.steps.len();
        let took = fmt_duration(self.started.elapsed());
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let counts = format!("{}, {} passed", plural(steps, "step"), plural(self.checks_passed, "check"));
        let kernel = crate::results::kernel_release();
        let line = match reason {
            Some(reason) => format!("{verdict} {path}: {reason} ({counts}, {took}, kernel {kernel})"),
            None => format!("{verdict} {path}: {counts} in {took} (kernel {kernel})"),
        };
        self.emit(&line);
    }
}
