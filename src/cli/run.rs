//! `netlab run`: the lab against the kernel, in a sandbox.

use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use netlab_runtime::{Lab, LabOptions};
use rhai::Dynamic;

use super::RunArgs;
use crate::engine::diagnose::{LabDiagnostic, Source, Verdict};
use crate::engine::session::{Explain, RunOptions};
use crate::engine::{self, parse_setting};
use crate::results::{Ending, Event, Events, Format, Outcome};

pub(super) fn report(d: LabDiagnostic) {
    eprintln!("{:?}", miette::Report::new(d));
}

pub(super) fn read_lab(path: &Path) -> Result<String, i32> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("netlab: cannot read {}: {e}", path.display());
        2
    })
}

pub(super) fn parse_settings(set: &[String]) -> Result<Vec<(String, Dynamic)>, i32> {
    set.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Ok((k.to_string(), parse_setting(v)))
            }
            _ => {
                eprintln!("netlab: --set takes NAME=VALUE with a plain name, e.g. --set n=100 (got {s:?})");
                Err(2)
            }
        })
        .collect()
}

pub fn run(args: &RunArgs) -> i32 {
    if let Some(kernel) = &args.kernel {
        if args.solution.is_some() || args.grade_json.is_some() {
            eprintln!("netlab: --solution cannot be combined with --kernel: grade on this machine's kernel");
            return 2;
        }
        return super::vm::run_lab(args, kernel);
    }
    let started = Instant::now();
    let settings = match parse_settings(&args.set) {
        Ok(s) => s,
        Err(c) => return c,
    };
    // Opened before the sandbox: its file system may not be the caller's.
    let events = match &args.events {
        Some(path) => match std::fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Some(Rc::new(f)),
            Err(e) => {
                eprintln!("netlab: --events {}: {e}", path.display());
                return 2;
            }
        },
        None => None,
    };
    let junit = match args.junit.as_deref().map(crate::results::JunitFile::create).transpose() {
        Ok(j) => j,
        Err(c) => return c,
    };
    // Read and opened before the sandbox, whose file system may not show them.
    let solution = match args.solution.as_deref().map(|p| read_solution(p, args.solution_timeout)).transpose() {
        Ok(s) => s,
        Err(c) => return c,
    };
    let grade_file = match &args.grade_json {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("netlab: --grade-json {}: {e}", path.display());
                return 2;
            }
        },
        None => None,
    };
    let name = args.lab.display().to_string();
    // A lab that ends before it runs is still reported (`--format`, `--junit`, `--events`).
    let ended_early = |outcome: Outcome, code: i32, message: String, detail: Option<String>, line: usize| {
        let mut ev = Events::new(&name, events.clone());
        let mut end = ending(outcome, code, Some(message), started.elapsed());
        end.detail = detail;
        end.line = line;
        ev.emit(Event::End(end));
        let labs = [ev.report(String::new())];
        match crate::results::write_reports(&labs, started.elapsed().as_secs_f64(), args.format, junit.as_ref()) {
            Ok(()) => code,
            Err(c) => c.max(code),
        }
    };
    let text = match read_lab(&args.lab) {
        Ok(t) => t,
        Err(c) => return ended_early(Outcome::Error, c, format!("cannot read {name}"), None, 0),
    };
    let src = Source { path: &name, text: &text };
    let ast = match engine::compile(&src) {
        Ok(ast) => ast,
        Err(d) => {
            let (message, detail, line) = (d.message.clone(), plain(&d), line_of(&text, &d));
            report(*d);
            return ended_early(Outcome::Error, 2, message, Some(detail), line);
        }
    };
    // Relative to where netlab was started, whatever the lab does to its cwd.
    let state = args.state.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    // The lab's folder, read-only, and what --bind asks for.
    let lab_dir = std::path::absolute(&args.lab)
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let binds = match binds(&lab_dir, &args.bind) {
        Ok(b) => b,
        Err(c) => return c,
    };
    // Written at the end, from inside the sandbox, whose file system is its own.
    let results = match std::env::var_os("NETLAB_RESULTS") {
        Some(path) => match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("netlab: cannot append to NETLAB_RESULTS ({}): {e}", std::path::Path::new(&path).display());
                return 2;
            }
        },
        None => None,
    };
    let state_file = match &state {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("netlab: --state {}: {e}", path.display());
                return 2;
            }
        },
        None => None,
    };
    // Before any thread exists: from here on we are inside the sandbox.
    if let Err(e) = netlab_runtime::enter_sandbox(&binds) {
        let message = e.to_string();
        eprintln!("{:?}", miette::Report::new(e));
        return ended_early(Outcome::Error, 3, message, None, 0);
    }
    let lab = match Lab::new(LabOptions { slow_factor: args.slow_factor, workdir: Some(lab_dir) }) {
        Ok(lab) => Rc::new(lab),
        Err(e) => {
            let message = e.to_string();
            eprintln!("{:?}", miette::Report::new(e));
            return ended_early(Outcome::Error, 3, message, None, 0);
        }
    };
    let options = RunOptions {
        limits: args.limits(),
        explain: if args.explain { Explain::Commands } else { Explain::Quiet },
        silent: false,
        until: args.until.clone(),
        diff: args.diff,
        to_stderr: args.format != Format::Human,
        transcript: args.format != Format::Human || args.junit.is_some(),
        events,
        solution,
        shell: None,
    };
    let outcome = engine::run(lab.clone(), &options, &src, &ast, &settings);
    if args.solution.is_some() && outcome.exercise.is_none() && outcome.diagnostic.is_none() {
        eprintln!("netlab: --solution: {name} is not an exercise (it calls no exercise())");
        lab.teardown();
        return 2;
    }
    let mut rep = outcome.reporter.borrow_mut();
    let code = match outcome.diagnostic {
        None if outcome.skipped.is_some() => {
            let reason = outcome.skipped.clone().unwrap_or_default();
            rep.summary(&name, "SKIP", Some(&reason));
            let ending = ending(Outcome::Skipped, 0, None, rep.events.elapsed());
            rep.events.emit(Event::End(ending));
            0
        }
        None if outcome.grade.is_some() => {
            let grade = outcome.grade.as_ref().expect("a grade");
            crate::engine::exercise::show(&rep, grade, false);
            let passed = grade.tasks.iter().filter(|t| t.passed).count();
            let score =
                format!("{}/{} points, {passed} of {} tasks", grade.points, grade.max_points, grade.tasks.len());
            rep.summary(&name, "GRADED", Some(&score));
            if let Some(mut file) = grade_file {
                let json = serde_json::to_string(grade).unwrap_or_default();
                if let Err(e) = std::io::Write::write_all(&mut file, json.as_bytes()) {
                    eprintln!("netlab: cannot write the grade: {e}");
                }
            }
            // A task that went wrong is the exercise's mistake.
            let code = if grade.tasks.iter().any(|t| t.error) { 2 } else { 0 };
            let outcome = if code == 0 { Outcome::Passed } else { Outcome::Error };
            let ending = ending(outcome, code, None, rep.events.elapsed());
            rep.events.emit(Event::End(ending));
            code
        }
        None => {
            rep.summary(&name, "PASS", None);
            let ending = ending(Outcome::Passed, 0, None, rep.events.elapsed());
            rep.events.emit(Event::End(ending));
            0
        }
        Some(d) => {
            let verdict = d.verdict;
            let line = line_of(&text, &d);
            let why = match verdict {
                Verdict::CheckFailed => "check failed",
                Verdict::ScriptError => "script error",
                Verdict::Environment => "environment problem",
                Verdict::Interrupted => "interrupted",
            };
            let step = rep.stopped_in().map(|s| format!(" in step {s}")).unwrap_or_default();
            let message = d.message.clone();
            let detail = plain(&d);
            report(*d);
            let at = if line > 0 { format!(" at line {line}") } else { String::new() };
            let outcome = match verdict {
                Verdict::CheckFailed => Outcome::Failed,
                Verdict::Interrupted => Outcome::Interrupted,
                Verdict::ScriptError | Verdict::Environment => Outcome::Error,
            };
            rep.summary(&name, outcome.word(), Some(&format!("{why}{step}{at}")));
            let mut end = ending(outcome, verdict.exit_code(), Some(message), rep.events.elapsed());
            end.detail = Some(detail);
            end.line = line;
            rep.events.emit(Event::End(end));
            verdict.exit_code()
        }
    };
    let written = crate::results::write_reports(
        &[rep.events.report(rep.transcript.borrow().clone())],
        rep.events.elapsed().as_secs_f64(),
        args.format,
        junit.as_ref(),
    );
    let code = match written {
        Ok(()) => code,
        Err(c) if code == 0 => c,
        Err(_) => code,
    };
    if let (Some(until), None) = (&args.until, outcome.stopped_after.as_ref()) {
        if code == 0 {
            eprintln!("netlab: --until {until:?}: no step is numbered or titled so; the lab ran to its end");
        }
    }
    if let (Some(path), Some(mut file)) = (&state, state_file) {
        let written = netlab_runtime::snapshot::take(&outcome.session.sysctls_set())
            .map_err(|e| e.to_string())
            .and_then(|s| std::io::Write::write_all(&mut file, s.to_json().as_bytes()).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("netlab: cannot write the state to {}: {e}", path.display());
        }
    }
    // Interrupted: the user wants the run to end, not a shell.
    if args.keep && netlab_runtime::interrupt::signal().is_none() {
        keep_shell(&lab);
    }
    let teardown_started = Instant::now();
    lab.teardown();
    if let Some(mut file) = results {
        let line = rep.results_line(&[
            ("lab", name.replace(char::is_whitespace, "_")),
            ("ready_wait_s", format!("{:.4}", lab.ready_wait().as_secs_f64())),
            ("teardown_s", format!("{:.4}", teardown_started.elapsed().as_secs_f64())),
            ("total_s", format!("{:.4}", started.elapsed().as_secs_f64())),
            ("exit", code.to_string()),
        ]);
        if let Err(e) = std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes()) {
            eprintln!("netlab: cannot append to NETLAB_RESULTS: {e}");
        }
    }
    code
}

/// The sandbox's view of the machine's folders: the lab's own read-only, and each
/// `--bind DIR[:rw]`. A folder that does not exist is the caller's mistake.
pub(super) fn binds(
    lab_dir: &std::path::Path,
    asked: &[String],
) -> Result<netlab_runtime::backend::kernel::sandbox::Binds, i32> {
    let mut binds = netlab_runtime::backend::kernel::sandbox::Binds {
        read_only: vec![lab_dir.to_path_buf()],
        read_write: Vec::new(),
    };
    for b in asked {
        let (dir, writable) = match b.strip_suffix(":rw") {
            Some(d) => (d, true),
            None => (b.strip_suffix(":ro").unwrap_or(b), false),
        };
        let path = match std::path::absolute(dir) {
            Ok(p) if p.is_dir() => p,
            _ => {
                eprintln!("netlab: --bind {b}: no such folder (give DIR, or DIR:rw for a writable one)");
                return Err(2);
            }
        };
        if writable {
            binds.read_write.push(path);
        } else {
            binds.read_only.push(path);
        }
    }
    Ok(binds)
}

/// The line of the lab a diagnostic points at (0: none).
fn line_of(text: &str, d: &LabDiagnostic) -> usize {
    d.span.map(|s| text[..s.offset().min(text.len())].matches('\n').count() + 1).unwrap_or(0)
}

fn ending(outcome: Outcome, exit_code: i32, message: Option<String>, took: std::time::Duration) -> Ending {
    let kernel = Some(crate::results::kernel_release());
    Ending { outcome, exit_code, message, detail: None, line: 0, seconds: took.as_secs_f64(), kernel }
}

/// A diagnostic as text without colours, for reports.
pub(super) fn plain(d: &LabDiagnostic) -> String {
    let mut out = String::new();
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor()).with_width(200);
    if handler.render_report(&mut out, d).is_err() {
        out = d.message.clone();
    }
    out
}

/// `--keep`: a shell in the sandbox; the lab's namespaces are under /run/netns.
fn keep_shell(lab: &Lab) {
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    eprintln!("netlab: the lab is kept; you are in its host namespace. `ip netns` lists its nodes. Exit the shell to tear it down.");
    let mut command = tokio::process::Command::new(&shell);
    command.env("PS1", "(netlab) # ");
    if let Some(Err(e)) = super::run_program(lab, command) {
        eprintln!("netlab: cannot start {shell}: {e}");
    }
}

/// The most a solution script may hold (it is passed to bash as an argument).
const MAX_SOLUTION: usize = 100 * 1024;

/// A solution script, read before the sandbox is entered.
fn read_solution(path: &Path, timeout: f64) -> Result<crate::engine::exercise::Solution, i32> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("netlab: --solution {}: {e}", path.display());
        2
    })?;
    if text.len() > MAX_SOLUTION || text.contains('\0') {
        eprintln!("netlab: --solution {}: not a script of at most {} KiB", path.display(), MAX_SOLUTION / 1024);
        return Err(2);
    }
    // A .rhai file is netlab's; anything else is a shell script (bash).
    let kind = crate::engine::exercise::SolutionKind::of(path).unwrap_or(crate::engine::exercise::SolutionKind::Shell);
    // Written on Windows, a script's lines end in CR LF: bash would take the CR as part
    // of each last word (`ip netns add container4\r`). Typed commands have none.
    let text = if kind == crate::engine::exercise::SolutionKind::Shell { text.replace("\r\n", "\n") } else { text };
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "solution".into());
    Ok(crate::engine::exercise::Solution { name, text, kind, timeout: std::time::Duration::from_secs_f64(timeout) })
}
