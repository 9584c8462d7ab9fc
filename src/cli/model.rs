//! The commands that run a lab against netlab's model of the network instead of
//! the kernel: `check`, `plan`, `graph` and `export`. No root, no sandbox, no
//! kernel: the ops are applied to an in-memory topology and the checks recorded.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use netlab_runtime::backend::model::ModelBackend;
use netlab_runtime::model::{Entry, Lint, LintKind, Op};
use netlab_runtime::render;

use super::run::{parse_settings, read_lab, report};
use super::{GraphFormat, ModelArgs};
use crate::engine::diagnose::{LabDiagnostic, Source};
use crate::engine::session::{Explain, RunOptions};
use crate::engine::{self, Outcome};

/// A lab run against the model.
pub(super) struct ModelRun {
    pub(super) outcome: Outcome,
    backend: Rc<ModelBackend>,
    text: String,
    name: String,
}

/// Compiles and runs the lab against a fresh model; a mistake is reported and
/// becomes the exit code.
pub(super) fn run_model(path: &std::path::Path, set: &[String], options: &RunOptions) -> Result<ModelRun, i32> {
    let settings = parse_settings(set)?;
    let text = read_lab(path)?;
    let name = path.display().to_string();
    let src = Source { path: &name, text: &text };
    let ast = engine::compile(&src).map_err(|d| {
        report(*d);
        2
    })?;
    let backend = Rc::new(ModelBackend::new());
    let mut outcome = engine::run(backend.clone(), options, &src, &ast, &settings);
    if let Some(d) = outcome.diagnostic.take() {
        let code = d.verdict.exit_code();
        report(*d);
        return Err(code);
    }
    Ok(ModelRun { outcome, backend, text, name })
}

/// The titles of a lab's steps, as the model runs it (as far as it gets): what
/// `netlab test --filter` matches besides the path. Nothing is printed.
pub(super) fn step_titles(path: &std::path::Path, set: &[String]) -> Vec<String> {
    let (Ok(settings), Ok(text)) = (parse_settings(set), std::fs::read_to_string(path)) else {
        return Vec::new();
    };
    let name = path.display().to_string();
    let src = Source { path: &name, text: &text };
    let Ok(ast) = engine::compile(&src) else { return Vec::new() };
    let outcome = engine::run(Rc::new(ModelBackend::new()), &quiet(), &src, &ast, &settings);
    let report = outcome.reporter.borrow().events.report(String::new());
    report.steps.into_iter().filter(|s| s.number > 0).map(|s| s.title).collect()
}

pub(super) fn quiet() -> RunOptions {
    RunOptions { silent: true, ..RunOptions::default() }
}

/// `netlab check`: every lab against the model; errors (exit 2) and warnings with
/// the line they are on.
pub fn check(labs: &[PathBuf], set: &[String]) -> i32 {
    let mut code = 0;
    for path in labs {
        match run_model(path, set, &quiet()) {
            Err(c) => code = code.max(c),
            Ok(run) => {
                let warnings = warnings(&run);
                let n = warnings.len();
                for w in warnings {
                    report(w);
                }
                match n {
                    0 => println!("ok {}", run.name),
                    n => println!("ok {} ({n} warning{})", run.name, if n == 1 { "" } else { "s" }),
                }
            }
        }
    }
    code
}

/// What the model noticed that the kernel would accept: a check outside any step,
/// overlapping subnets on a node, an address used twice on one segment.
fn warnings(run: &ModelRun) -> Vec<LabDiagnostic> {
    let src = Source { path: &run.name, text: &run.text };
    let mut out = Vec::new();
    for line in run.outcome.session.checks_outside_steps.borrow().iter() {
        let mut d = src.diagnostic_at(
            rhai::Position::new(*line as u16, 1),
            "netlab::check_outside_step",
            "a check outside any step".into(),
        );
        d.help = Some("put it inside step(\"...\", || { ... }) so the report says what it belongs to".into());
        d.warning = true;
        out.push(d);
    }
    let journal = run.outcome.session.journal();
    for lint in run.backend.topology().lints() {
        let line = lint_line(&journal, &lint);
        let code = match lint.kind {
            LintKind::OverlappingSubnets => "netlab::overlapping_subnets",
            LintKind::DuplicateAddress => "netlab::duplicate_address",
        };
        let mut d = src.diagnostic_at(rhai::Position::new(line as u16, 1), code, lint.message.clone());
        d.help = Some(match lint.kind {
            LintKind::OverlappingSubnets => "give each link of a node its own subnet".into(),
            LintKind::DuplicateAddress => "each node on one segment needs its own address".into(),
        });
        d.warning = true;
        out.push(d);
    }
    out
}

/// The line of the last address added on a node the lint is about.
fn lint_line(journal: &[Entry], lint: &Lint) -> usize {
    journal
        .iter()
        .rev()
        .find_map(|e| match e {
            Entry::Op { op: Op::AddAddr { node, .. }, line } if lint.nodes.contains(node) => Some(*line),
            _ => None,
        })
        .unwrap_or(0)
}

/// `netlab plan`: the steps, the commands each would run and the checks it would make.
pub fn plan(args: &ModelArgs) -> i32 {
    let started = Instant::now();
    let options = RunOptions { explain: Explain::Commands, ..RunOptions::default() };
    match run_model(&args.lab, &args.set, &options) {
        Err(code) => code,
        Ok(run) => {
            let journal = run.outcome.session.journal();
            let count = |f: fn(&Entry) -> bool| journal.iter().filter(|e| f(e)).count();
            let steps = count(|e| matches!(e, Entry::Step { .. }));
            let ops = count(|e| matches!(e, Entry::Op { .. }));
            let checks = count(|e| matches!(e, Entry::Probe { .. } | Entry::Claim { .. }));
            println!(
                "PLAN {}: {steps} steps, {ops} changes, {checks} checks (nothing was run; {} ms)",
                run.name,
                started.elapsed().as_millis()
            );
            0
        }
    }
}

/// `netlab graph`.
pub fn graph(args: &ModelArgs, format: GraphFormat) -> i32 {
    match run_model(&args.lab, &args.set, &quiet()) {
        Err(code) => code,
        Ok(run) => {
            let topology = run.backend.topology();
            let text = match format {
                GraphFormat::Mermaid => render::graph::mermaid(&topology),
                GraphFormat::Dot => render::graph::dot(&topology),
            };
            print!("{text}");
            0
        }
    }
}

/// `netlab export`.
pub fn export(args: &ModelArgs) -> i32 {
    match run_model(&args.lab, &args.set, &quiet()) {
        Err(code) => code,
        Ok(run) => {
            let name = args.lab.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            print!(
                "{}",
                render::bash::export(&name, &run.outcome.session.journal(), netlab_runtime::backend::kernel::HOST)
            );
            0
        }
    }
}
