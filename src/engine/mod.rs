//! The Rhai side of netlab: one Engine with netlab's functions registered, running a
//! lab file against a Lab (the kernel side) and reporting the outcome.

pub mod api;
mod bridging;
mod checks;
pub mod diagnose;
pub mod exercise;
mod firewall;
mod impair;
mod ipv6;
pub mod limits;
mod links;
mod lint;
mod neigh;
mod net;
mod paths;
mod routing;
mod services;
pub mod session;
pub mod stdlib;
pub mod values;
mod wireguard;

use std::cell::RefCell;
use std::rc::Rc;

use netlab_runtime::backend::Backend;
use rhai::{Dynamic, Engine, Scope, AST};

use crate::report::Reporter;
use diagnose::{LabDiagnostic, Source};

/// An engine with only syntax and size limits set up: enough to compile and lint a
/// lab without touching the kernel.
pub fn base_engine() -> Engine {
    let mut engine = Engine::new();
    limits::bound_sizes(&mut engine);
    engine
}

/// Parses and lints a lab. Errors point at the line.
pub fn compile(src: &Source) -> Result<AST, Box<LabDiagnostic>> {
    let ast = base_engine().compile(src.text).map_err(|e| Box::new(diagnose::from_parse_error(src, &e)))?;
    match lint::unknown_functions(src, &ast) {
        Some(d) => Err(d),
        None => Ok(ast),
    }
}

/// Values given with `--set name=value`: ints, floats and booleans keep their type.
pub fn parse_setting(value: &str) -> Dynamic {
    if let Ok(i) = value.parse::<i64>() {
        Dynamic::from(i)
    } else if let Ok(f) = value.parse::<f64>() {
        Dynamic::from(f)
    } else if let Ok(b) = value.parse::<bool>() {
        Dynamic::from(b)
    } else {
        Dynamic::from(value.to_string())
    }
}

pub struct Outcome {
    pub reporter: Rc<RefCell<Reporter>>,
    pub diagnostic: Option<Box<LabDiagnostic>>,
    pub session: Rc<session::Session>,
    /// The step `--until` stopped after, as "2. Title".
    pub stopped_after: Option<String>,
    /// Why the lab skipped the rest of itself (`skip()`, `requires()`).
    pub skipped: Option<String>,
    /// What `exercise()` and `task()` registered, when the file is an exercise.
    pub exercise: Option<exercise::Exercise>,
    /// The exercise's tasks as graded (the kernel only: the model grades nothing).
    pub grade: Option<exercise::Grade>,
    /// The model only: the commands a .rhai solution's ops stand for, or its mistake.
    pub solution_commands: Option<Result<Vec<String>, String>>,
}

/// Runs a compiled lab against a backend: the kernel's, or the model's.
pub fn run(
    backend: Rc<dyn Backend>,
    options: &session::RunOptions,
    src: &Source,
    ast: &AST,
    settings: &[(String, Dynamic)],
) -> Outcome {
    let mut reporter = Reporter::default();
    reporter.silent = options.silent;
    reporter.to_stderr = options.to_stderr;
    reporter.keep_transcript = options.transcript;
    reporter.events = crate::results::Events::new(src.path, options.events.clone());
    let reporter = Rc::new(RefCell::new(reporter));
    let session = Rc::new(session::Session::new(backend, reporter.clone(), options));
    let mut engine = base_engine();
    let solution_deadline = Rc::new(std::cell::Cell::new(None));
    limits::watch(&mut engine, options.limits, session.ends_at(), solution_deadline.clone());
    engine.set_module_resolver(stdlib::StdlibResolver::new(std::path::Path::new(src.path)));
    net::register(&mut engine, &session);
    links::register(&mut engine, &session);
    bridging::register(&mut engine, &session);
    wireguard::register(&mut engine, &session);
    ipv6::register(&mut engine, &session);
    routing::register(&mut engine, &session);
    neigh::register(&mut engine, &session);
    checks::register(&mut engine, &session, &reporter);
    paths::register(&mut engine, &session, &reporter);
    firewall::register(
        &mut engine,
        &session,
        std::path::Path::new(src.path).parent().unwrap_or(std::path::Path::new("")),
    );
    services::register(&mut engine, &session, &reporter);
    impair::register(&mut engine, &session, &reporter);
    let exercise: exercise::SharedExercise = Rc::default();
    exercise::register(&mut engine, &session, &reporter, &exercise);
    // A lab that catches an error (`try { ... } catch (e) { print(e) }`) sees its text.
    engine.register_fn("to_string", |f: &mut values::Failure| f.to_string());
    engine.register_fn("to_debug", |f: &mut values::Failure| f.to_string());
    let rep = reporter.clone();
    engine.on_print(move |text| rep.borrow().print(text));
    let rep = reporter.clone();
    engine.on_debug(move |text, _, pos| rep.borrow().print(&format!("[line {}] {text}", pos.line().unwrap_or(0))));

    let mut scope = Scope::new();
    for (name, value) in settings {
        scope.push_constant_dynamic(name.as_str(), value.clone());
    }
    let result = engine.run_ast_with_scope(&mut scope, ast);
    // Whatever stopped a lab after a stop signal (a wait the signal ended, a program
    // the terminal's Ctrl-C killed too) is the signal; whatever stopped it past its
    // wall-clock limit (a probe or program whose deadline was cut to the time left)
    // is the limit.
    let result = result.map_err(|e| {
        let stopped = matches!(*e, rhai::EvalAltResult::ErrorTerminated(..));
        if let Some(sig) = netlab_runtime::interrupt::signal() {
            limits::Stopped::Signal(sig).at(diagnose::position(&e))
        } else if !stopped && std::time::Instant::now() >= session.ends_at() {
            limits::Stopped::MaxTime(options.limits.max_time).at(diagnose::position(&e))
        } else {
            e
        }
    });
    // The lab's last ops are in the kernel before anything reads it (--state, --keep).
    let result = result.and_then(|_| session.flush(rhai::Position::NONE));
    // --until: stopping after the step asked for is a pass.
    let mut stopped_after = None;
    let mut skipped = None;
    let result = result.or_else(|e| match diagnose::payload(&e) {
        Some(values::Failure::StopAfter(step)) => {
            stopped_after = Some(step);
            Ok(())
        }
        // A skip is not a failure: the lab ends there, reported as skipped.
        Some(values::Failure::Skip(reason)) => {
            skipped = Some(reason);
            Ok(())
        }
        _ => Err(e),
    });
    // An exercise: after its starting state (and the solution), every task is graded.
    let mut grade = None;
    let mut solution_commands = None;
    let result = match (result, exercise.borrow().as_ref()) {
        (Ok(()), Some(ex)) if skipped.is_none() && stopped_after.is_none() && session.evaluates() => {
            let mut attempts = exercise::Attempts::default();
            let grader = exercise::Grader {
                engine: &engine,
                ast,
                ss: &session,
                rep: &reporter,
                ex,
                solution_deadline: &solution_deadline,
            };
            match &options.shell {
                // Graded each time the student asks, until they leave.
                Some(shell) => {
                    let mut stopped = None;
                    grade = (shell.0)(&mut || {
                        // The steps are not shown: the score says why each task failed.
                        let was_silent = std::mem::replace(&mut reporter.borrow_mut().silent, true);
                        reporter.borrow_mut().restart_steps();
                        let graded = exercise::resync(&session)
                            .map_err(|e| values::failure(values::Failure::Error(Rc::new(e)), rhai::Position::NONE))
                            .and_then(|_| exercise::grade(&grader, &mut scope, None, &mut attempts));
                        reporter.borrow_mut().silent = was_silent;
                        match graded {
                            Ok(g) => {
                                exercise::show(&reporter.borrow(), &g, true);
                                Some(g)
                            }
                            Err(e) => {
                                stopped = Some(e);
                                None
                            }
                        }
                    });
                    stopped.map_or(Ok(()), Err)
                }
                None => exercise::grade(&grader, &mut scope, options.solution.as_ref(), &mut attempts).map(|g| {
                    grade = Some(g);
                }),
            }
        }
        (Ok(()), Some(ex)) if skipped.is_none() && !session.evaluates() => {
            // A .rhai solution runs against the model too: its commands (grade --explain).
            if let Some(sol) = options.solution.as_ref().filter(|s| s.kind == exercise::SolutionKind::Rhai) {
                let from = session.journal_len();
                let ran = exercise::run_rhai(&engine, &mut scope, &session, sol, &solution_deadline);
                let ran = match ran {
                    Ok(exercise::RhaiRun::Mistake(m)) => Err(m),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.to_string()),
                };
                solution_commands = Some(ran.map(|_| session.commands_since(from)));
            }
            let mut rep = reporter.borrow_mut();
            for (i, t) in ex.tasks.iter().enumerate() {
                rep.check_planned(&format!(
                    "task {}: {} ({} pt): graded by a real run, after the solution",
                    i + 1,
                    t.title,
                    t.points
                ));
            }
            Ok(())
        }
        (result, _) => result,
    };
    let diagnostic = result.err().map(|e| {
        let step = reporter.borrow().stopped_in();
        Box::new(diagnose::from_eval_error(src, &e, step))
    });
    let exercise = exercise.borrow_mut().take();
    Outcome { reporter, diagnostic, session, stopped_after, skipped, exercise, grade, solution_commands }
}
