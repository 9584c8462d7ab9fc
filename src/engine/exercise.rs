//! Exercises: `exercise()` marks a lab file as one, its ordinary statements build the
//! starting state, and `task()` registers what a student must make true, with points
//! and hints. After the starting state (and a student's solution, when one is given)
//! every task's checks run against the current kernel state, each on its own: a
//! failed check fails that task only, and the next one is checked all the same.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use netlab_runtime::backend::kernel::exec::CommandLine;
use netlab_runtime::backend::kernel::HOST;
use netlab_runtime::{Error, NodeName};
use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext, AST};
use serde::{Deserialize, Serialize};

use super::session::Session;
use super::values::{failure, line, reject_unknown, runtime_error, Failure, RhaiResult};
use crate::report::{Reporter, StepResult};

/// The most points one task may give.
const MAX_POINTS: i64 = 1000;

/// A solution to grade, run after the starting state: a bash script in the lab's
/// host, or a Rhai script in the exercise's own engine and scope.
#[derive(Debug, Clone)]
pub struct Solution {
    /// Its name as reports show it (the file's stem: the student).
    pub name: String,
    /// The script itself, read before the sandbox was entered.
    pub text: String,
    pub kind: SolutionKind,
    /// Killed (with every process it started) after this long; the tasks are then
    /// graded as they stand.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolutionKind {
    /// `*.sh`: the tutorial's commands, run by bash.
    Shell,
    /// `*.rhai`: netlab's functions (node, veth, addr, route, nat ...), run after the
    /// starting state with its variables in scope.
    Rhai,
}

impl SolutionKind {
    /// The kind a file's name says, if any.
    pub fn of(path: &std::path::Path) -> Option<SolutionKind> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("sh") => Some(SolutionKind::Shell),
            Some("rhai") => Some(SolutionKind::Rhai),
            _ => None,
        }
    }
}

pub struct Task {
    pub title: String,
    pub points: i64,
    pub hints: Vec<String>,
    body: FnPtr,
    line: usize,
}

/// What `exercise()` and `task()` registered.
#[derive(Default)]
pub struct Exercise {
    pub title: String,
    pub summary: Option<String>,
    pub tasks: Vec<Task>,
}

impl Exercise {
    pub fn max_points(&self) -> i64 {
        self.tasks.iter().map(|t| t.points).sum()
    }
}

pub type SharedExercise = Rc<RefCell<Option<Exercise>>>;

/// One task as graded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskGrade {
    pub title: String,
    /// The points earned: all of max_points or none.
    pub points: i64,
    pub max_points: i64,
    pub passed: bool,
    /// Why it did not pass (the failed check, or what is missing).
    pub message: Option<String>,
    /// The next hint for a task that did not pass: after the first failed attempt
    /// the first hint, after the second the second, and so on (the last one stays).
    pub hint: Option<String>,
    /// How many of the task's hints the student has been shown, this one included
    /// (0 for a task passed at the first attempt).
    #[serde(default)]
    pub hints_reached: usize,
    /// The task itself went wrong (a mistake of the exercise, not of the student).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
}

/// A whole grading: one student's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grade {
    pub tasks: Vec<TaskGrade>,
    pub points: i64,
    pub max_points: i64,
    /// The solution's exit code (None: none was run, or a signal ended it).
    pub solution_exit: Option<i32>,
    /// The solution ran into its timeout and was stopped.
    pub solution_timed_out: bool,
}

fn points(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<i64> {
    match opts.get("points") {
        None => Ok(1),
        Some(v) => match v.as_int() {
            Ok(p) if (1..=MAX_POINTS).contains(&p) => Ok(p),
            _ => Err(runtime_error(
                ctx,
                format!("points must be a whole number from 1 to {MAX_POINTS} (got {v}); e.g. #{{points: 2}}"),
            )),
        },
    }
}

fn hints(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<Vec<String>> {
    let need = || {
        runtime_error(
            ctx,
            "a task needs hints: one or more texts, shown in order after failed attempts, e.g. \
             #{hints: [\"ip netns add makes a namespace\"]}"
                .into(),
        )
    };
    let Some(value) = opts.get("hints") else { return Err(need()) };
    let list = value.clone().try_cast::<Array>().ok_or_else(need)?;
    let hints = list
        .into_iter()
        .map(|h| h.into_string().ok().filter(|s| !s.trim().is_empty()))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(need)?;
    if hints.is_empty() {
        return Err(need());
    }
    Ok(hints)
}

pub fn register(engine: &mut Engine, s: &Rc<Session>, rep: &Rc<RefCell<Reporter>>, ex: &SharedExercise) {
    let mark = {
        let (ex, r) = (ex.clone(), rep.clone());
        move |ctx: &NativeCallContext, title: &str, opts: &Map| -> RhaiResult<()> {
            reject_unknown(ctx, opts, &["summary"])?;
            if ex.borrow().is_some() {
                return Err(runtime_error(ctx, "exercise() is called once, at the top of the file".into()));
            }
            if r.borrow().last_step().is_some() || r.borrow().current_step().is_some() {
                return Err(runtime_error(ctx, "exercise() comes first, before any step".into()));
            }
            if title.trim().is_empty() {
                return Err(runtime_error(ctx, "exercise() needs a title, e.g. exercise(\"NAT by hand\")".into()));
            }
            let summary = super::values::opt_str(ctx, opts, "summary")?;
            r.borrow().print_plain(&format!("Exercise: {title}"));
            if let Some(s) = &summary {
                r.borrow().print_plain(&format!("  {s}"));
            }
            *ex.borrow_mut() = Some(Exercise { title: title.to_string(), summary, tasks: Vec::new() });
            Ok(())
        }
    };
    let m = mark.clone();
    engine.register_fn("exercise", move |ctx: NativeCallContext, title: &str| m(&ctx, title, &Map::new()));
    engine.register_fn("exercise", move |ctx: NativeCallContext, title: &str, opts: Map| mark(&ctx, title, &opts));

    let (ex, r, _ss) = (ex.clone(), rep.clone(), s.clone());
    engine.register_fn("task", move |ctx: NativeCallContext, title: &str, opts: Map, body: FnPtr| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["points", "hints"])?;
        let (points, hints) = (points(&ctx, &opts)?, hints(&ctx, &opts)?);
        if r.borrow().current_step().is_some() {
            return Err(runtime_error(&ctx, "task() registers a task: call it at the top level, not in a step".into()));
        }
        let mut ex = ex.borrow_mut();
        let Some(ex) = ex.as_mut() else {
            return Err(runtime_error(
                &ctx,
                "task() belongs to an exercise: start the file with exercise(\"Title\", #{summary: \"...\"})".into(),
            ));
        };
        if title.trim().is_empty() || ex.tasks.iter().any(|t| t.title == title) {
            return Err(runtime_error(&ctx, format!("each task needs a title of its own (got {title:?} again)")));
        }
        ex.tasks.push(Task { title: title.to_string(), points, hints, body, line: line(&ctx) });
        Ok(())
    });
}

/// What grading needs of a run: the engine and AST the tasks' closures belong to,
/// and the deadline the engine's progress callback watches while a .rhai solution
/// runs (limits::watch).
pub struct Grader<'a> {
    pub engine: &'a Engine,
    pub ast: &'a AST,
    pub ss: &'a Session,
    pub rep: &'a RefCell<Reporter>,
    pub ex: &'a Exercise,
    pub solution_deadline: &'a std::cell::Cell<Option<Instant>>,
}

/// Runs the solution (if any), then checks every task against the current state.
/// Only a stop (a signal, --max-time) ends it early, as an error. A .rhai solution
/// runs in `scope`, the one the starting state left.
pub fn grade(
    g: &Grader,
    scope: &mut rhai::Scope,
    solution: Option<&Solution>,
    attempts: &mut Attempts,
) -> RhaiResult<Grade> {
    let Grader { engine, ast, ss, rep, ex, .. } = *g;
    let mut grade = Grade {
        tasks: Vec::new(),
        points: 0,
        max_points: ex.max_points(),
        solution_exit: None,
        solution_timed_out: false,
    };
    ss.flush(rhai::Position::NONE)?;
    if let Some(solution) = solution {
        rep.borrow_mut().begin_step(&format!("Solution {}", solution.name), 0);
        let ran = match solution.kind {
            SolutionKind::Shell => run_solution(ss, solution),
            SolutionKind::Rhai => run_rhai_solution(g, scope, solution)?,
        };
        let mut r = rep.borrow_mut();
        match ran {
            Ok(run) => {
                for l in run.output.lines() {
                    r.print(l);
                }
                if run.timed_out {
                    r.print(&format!(
                        "(stopped after {} s, --timeout: the tasks are graded as they stand)",
                        solution.timeout.as_secs_f64()
                    ));
                } else {
                    r.print(&format!(
                        "(exit code {})",
                        run.code.map_or("none: killed by a signal".into(), |c| c.to_string())
                    ));
                }
                grade.solution_exit = run.code;
                grade.solution_timed_out = run.timed_out;
                r.end_step(StepResult::Passed);
            }
            Err(e) => {
                r.print(&format!("the solution could not run: {e}"));
                r.end_step(StepResult::Error);
                drop(r);
                return Err(failure(Failure::Error(Rc::new(e)), rhai::Position::NONE));
            }
        }
    }
    for (i, task) in ex.tasks.iter().enumerate() {
        rep.borrow_mut().begin_step(&format!("Task {}: {} ({} pt)", i + 1, task.title, task.points), task.line);
        let out = task.body.call::<Dynamic>(engine, ast, ()).map(|_| ()).and_then(|_| ss.flush(rhai::Position::NONE));
        let stopped = |e: &EvalAltResult| {
            matches!(e, EvalAltResult::ErrorTerminated(..)) || netlab_runtime::interrupt::signal().is_some()
        };
        let (result, message, error) = match out {
            Ok(()) => (StepResult::Passed, None, false),
            Err(e) if stopped(&e) => {
                rep.borrow_mut().end_step(StepResult::Interrupted);
                return Err(e);
            }
            Err(e) => match super::diagnose::payload(&e) {
                Some(Failure::Check(c)) => (StepResult::Failed, Some(format!("{}: {}", c.title, c.detail)), false),
                // What the student has not made yet: a node or a link of the task.
                Some(Failure::Error(err)) if matches!(*err, Error::NoSuchNode { .. } | Error::NoSuchLink { .. }) => {
                    let at = e.position().line().unwrap_or(task.line);
                    rep.borrow_mut().check_failed("not there (yet)", &err.to_string(), at);
                    (StepResult::Failed, Some(err.to_string()), false)
                }
                _ => {
                    let at = e.position().line().map(|l| format!(" at line {l}")).unwrap_or_default();
                    let text = match super::diagnose::payload(&e) {
                        Some(p) => p.to_string(),
                        None => e.to_string(),
                    };
                    let message = format!("error in the exercise{at}: {text}");
                    rep.borrow().print(&message);
                    (StepResult::Error, Some(message), true)
                }
            },
        };
        let passed = result == StepResult::Passed;
        let hint = (!passed && !error).then(|| attempts.next_hint(i, &task.hints));
        if let Some(h) = &hint {
            rep.borrow().print(&format!("hint: {h}"));
        }
        rep.borrow_mut().end_step(result);
        let earned = if passed { task.points } else { 0 };
        grade.points += earned;
        grade.tasks.push(TaskGrade {
            title: task.title.clone(),
            points: earned,
            max_points: task.points,
            passed,
            message,
            hint,
            hints_reached: attempts.reached(i, task.hints.len()),
            error,
        });
    }
    Ok(grade)
}

/// Each task's failed attempts so far: the hint a student sees next.
#[derive(Debug, Default)]
pub struct Attempts {
    failed: Vec<usize>,
}

impl Attempts {
    /// One more failed attempt at task `i`: its next hint (the last one again once
    /// all were shown).
    fn next_hint(&mut self, i: usize, hints: &[String]) -> String {
        if self.failed.len() <= i {
            self.failed.resize(i + 1, 0);
        }
        self.failed[i] += 1;
        hints[(self.failed[i] - 1).min(hints.len() - 1)].clone()
    }

    /// How many of task `i`'s hints were shown so far.
    fn reached(&self, i: usize, hints: usize) -> usize {
        self.failed.get(i).copied().unwrap_or(0).min(hints)
    }
}

/// `netlab exercise`: the student's shell, run after the starting state. It is
/// handed a way to grade the tasks against the current state (printing them, as
/// a run does) and gives back the last grade when the student leaves.
#[derive(Clone)]
pub struct Shell(pub Rc<dyn Fn(GradeNow) -> Option<Grade>>);

/// Grades the tasks now and shows the result; None when a stop signal ended it.
pub type GradeNow<'a> = &'a mut dyn FnMut() -> Option<Grade>;

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shell")
    }
}

/// The score and every task. Under a run's steps, which show why a task failed,
/// only the hints; after `check` (which shows no steps), the reasons too.
pub fn show(rep: &Reporter, grade: &Grade, reasons: bool) {
    rep.print_plain(&format!("Score: {}/{} points", grade.points, grade.max_points));
    for (i, t) in grade.tasks.iter().enumerate() {
        let mark = if t.passed { "✓" } else { "✗" };
        rep.print_plain(&format!("  {mark} {}. {} ({}/{})", i + 1, t.title, t.points, t.max_points));
        if let (true, Some(m)) = (reasons, &t.message) {
            rep.print_plain(&format!("      not yet: {m}"));
        }
        if let Some(h) = &t.hint {
            let n = if reasons { format!(" {}", t.hints_reached) } else { String::new() };
            rep.print_plain(&format!("      hint{n}: {h}"));
        }
    }
}

/// What a student or a script changed happened behind netlab's back: a program
/// run through the backend makes it look at every node again (and adopt the new
/// ones).
pub fn resync(ss: &Session) -> Result<(), Error> {
    let host = NodeName::new(HOST)?;
    let done = CommandLine { program: "true".into(), argv: vec!["true".into()], shell: None };
    ss.backend().exec(&host, &done, Duration::from_secs(10))?;
    Ok(())
}

/// How a .rhai solution went.
pub enum RhaiRun {
    Done,
    /// Stopped at its --timeout.
    TimedOut,
    /// The student's mistake (a parse error, an unknown function, a failed call),
    /// said with the file and line: `typo.rhai:3: Function not found: vet ...`.
    Mistake(String),
}

/// A .rhai solution in the exercise's engine, after the starting state and with its
/// variables (`scope`); `deadline` is the one the engine's progress callback watches
/// (limits::watch). Only a stop signal or --max-time is an error.
pub fn run_rhai(
    engine: &Engine,
    scope: &mut rhai::Scope,
    ss: &Session,
    solution: &Solution,
    deadline: &std::cell::Cell<Option<Instant>>,
) -> RhaiResult<RhaiRun> {
    let at =
        |line: Option<usize>| format!("{}.rhai{}", solution.name, line.map(|l| format!(":{l}")).unwrap_or_default());
    let ast = match engine.compile(&solution.text) {
        Ok(ast) => ast,
        Err(e) => return Ok(RhaiRun::Mistake(format!("{}: {}", at(e.1.line()), e.0))),
    };
    deadline.set(Some(Instant::now() + solution.timeout));
    let ran = engine.run_ast_with_scope(scope, &ast).and_then(|_| ss.flush(rhai::Position::NONE));
    deadline.set(None);
    let Err(e) = ran else { return Ok(RhaiRun::Done) };
    if let EvalAltResult::ErrorTerminated(token, _) = &*e {
        return match token.clone().try_cast::<super::limits::Stopped>() {
            Some(super::limits::Stopped::Solution) => Ok(RhaiRun::TimedOut),
            _ => Err(e),
        };
    }
    if netlab_runtime::interrupt::signal().is_some() {
        return Err(e);
    }
    let text = super::diagnose::payload(&e).map(|p| p.to_string()).unwrap_or_else(|| e.to_string());
    Ok(RhaiRun::Mistake(format!("{}: {text}", at(e.position().line()))))
}

/// A .rhai solution while grading: its mistakes are the student's (its output, exit
/// 1), and the tasks are graded all the same.
fn run_rhai_solution(
    g: &Grader,
    scope: &mut rhai::Scope,
    solution: &Solution,
) -> RhaiResult<Result<SolutionRun, Error>> {
    let run = match run_rhai(g.engine, scope, g.ss, solution, g.solution_deadline)? {
        RhaiRun::Done => SolutionRun { code: Some(0), timed_out: false, output: String::new() },
        RhaiRun::TimedOut => SolutionRun { code: None, timed_out: true, output: String::new() },
        RhaiRun::Mistake(output) => SolutionRun { code: Some(1), timed_out: false, output },
    };
    Ok(resync(g.ss).map(|_| run))
}

struct SolutionRun {
    code: Option<i32>,
    timed_out: bool,
    output: String,
}

/// The most of a solution's output shown (its last lines).
const OUTPUT_SHOWN: usize = 4000;

/// bash runs the script in the lab's host, stdin closed, its output into a file (a
/// process it leaves running cannot hold a pipe of ours open); GNU timeout kills its
/// whole process group at the timeout. It is started from netlab's own process (in
/// the host namespace, the sandbox's mounts), not the way exec_in starts programs
/// (with mounts of their own): the namespaces `ip netns add` mounts under /run/netns
/// must stay visible to the tasks.
fn run_solution(ss: &Session, solution: &Solution) -> Result<SolutionRun, Error> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let out = tempfile::NamedTempFile::new().map_err(|e| Error::io("making a file for the solution's output", e))?;
    // One open file description for stdout and stderr: one offset, so neither
    // overwrites the other.
    let stdout = out.reopen().map_err(|e| Error::io("opening the solution's output file", e))?;
    let stderr = stdout.try_clone().map_err(|e| Error::io("sharing the solution's output file", e))?;
    let seconds = format!("{}", solution.timeout.as_secs_f64());
    let started = Instant::now();
    let mut command = Command::new("timeout");
    // SAFETY: only setrlimit(2) between fork and exec.
    unsafe { command.pre_exec(netlab_runtime::backend::kernel::sandbox::limit_processes) };
    let mut child = command
        .args(["--kill-after=2", seconds.as_str(), "bash", "-c", solution.text.as_str(), solution.name.as_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .current_dir(std::env::temp_dir())
        .spawn()
        .map_err(|e| Error::io("starting the solution (timeout, bash)", e))?;
    // timeout(1) ends by itself at the timeout (2 s more to kill); this is a bound
    // on that, and the stop signals end it as they end a lab.
    let bound = solution.timeout + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < bound && netlab_runtime::interrupt::signal().is_none() => {
                // The lab's own servers (HTTP, DNS, UDP) answer the script meanwhile.
                ss.backend().sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                // timeout(1) leads the script's process group: all of it goes.
                // SAFETY: kill(2) on the group of a child we have not reaped yet.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => return Err(Error::io("waiting for the solution", e)),
        }
    };
    resync(ss)?;
    let output = std::fs::read(out.path()).unwrap_or_default();
    let mut output = String::from_utf8_lossy(&output).into_owned();
    if output.len() > OUTPUT_SHOWN {
        let mut cut = output.len() - OUTPUT_SHOWN;
        while !output.is_char_boundary(cut) {
            cut += 1;
        }
        output = format!("[...]{}", &output[cut..]);
    }
    let code = status.and_then(|s| s.code());
    // timeout(1) exits 124 when it stopped the script (137 when it had to kill it).
    let timed_out = status.is_none() || (matches!(code, Some(124 | 137)) && started.elapsed() >= solution.timeout);
    Ok(SolutionRun { code: if timed_out { None } else { code }, timed_out, output })
}
