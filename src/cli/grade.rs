//! `netlab grade EXERCISE --solution PATH...`: each solution (a bash script; a
//! folder holds one per student) graded in its own `netlab run EXERCISE --solution
//! SCRIPT` process and sandbox, several at once; a table, JSON or CSV of the scores.
//!
//! The run inside stops a solution at `--timeout` itself and grades the tasks as
//! they stand; this process kills a run (its whole sandbox) that outlasts that by
//! more than its build-and-grade allowance, with the machinery of `netlab test`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::engine::exercise::{Grade, TaskGrade};
use crate::report::fmt_duration;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradeFormat {
    Human,
    Json,
    Csv,
}

#[derive(clap::Args)]
pub struct GradeArgs {
    /// The exercise (.rhai, calling exercise() and task()).
    exercise: PathBuf,
    /// A solution: a bash script (or a .rhai file of netlab's functions), or a folder
    /// whose *.sh and *.rhai files are each a student's (repeatable). A student is
    /// named by the file's stem.
    #[arg(long = "solution", value_name = "PATH", required_unless_present = "explain")]
    solutions: Vec<PathBuf>,
    /// Show the reference solution's commands (first, on stdout; on stderr with
    /// --format json or csv): a .sh one's command lines, a .rhai one's ops as the
    /// ip, iptables and sysctl commands they stand for (through netlab's model).
    #[arg(long)]
    explain: bool,
    /// The reference solution --explain shows (default: NAME/solutions/reference.sh
    /// or .rhai beside the exercise NAME.rhai).
    #[arg(long, value_name = "PATH", requires = "explain")]
    reference: Option<PathBuf>,
    /// Solutions graded at the same time (default: 16 per CPU: grading is mostly
    /// waiting, for probes that must time out; benches/grade.sh).
    #[arg(long, short, value_parser = clap::value_parser!(u64).range(1..4096))]
    jobs: Option<u64>,
    /// Stop a solution (with every process it started) after this many seconds; its
    /// tasks are then graded as they stand.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS", value_parser = super::test::parse_timeout)]
    timeout: f64,
    /// human (a table), json (one record per student) or csv (one row per student, a
    /// column per task), on stdout.
    #[arg(long, value_enum, default_value = "human")]
    format: GradeFormat,
    /// Also write the class report to FILE: a self-contained HTML page (scores, each
    /// task's pass rate, each student's failed checks and hints).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Passed on to every run.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = crate::engine::limits::parse_slow_factor)]
    slow_factor: f64,
}

/// Solutions graded at once per CPU by default. A run is mostly waiting (a solution
/// without its NAT rule waits out a 3 s probe) and takes ~0.2 s of CPU: on 2 cores,
/// 30 NAT solutions take 17.3 s at 2 per CPU, 10.2 s at 4 and 5.3 s at 16, where
/// the CPUs are busy (benches/grade.sh, G1), with the same scores each time.
const JOBS_PER_CPU: usize = 16;

/// One student's record, as `--format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The solution file's stem.
    pub name: String,
    pub tasks: Vec<TaskGrade>,
    pub points: i64,
    pub max_points: i64,
    pub duration_s: f64,
    /// graded (the solution ran to its end), timeout (stopped at --timeout, graded
    /// as it stood), or error (not graded: the message says why).
    pub outcome: &'static str,
    /// The solution's exit code.
    pub solution_exit: Option<i32>,
    /// Why a solution was not graded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the exercise offers, read through the model (no root, nothing run).
struct TaskInfo {
    title: String,
    points: i64,
}

/// `--explain`: the reference solution's commands, as text to print.
fn explain(args: &GradeArgs) -> Result<String, i32> {
    let path = match &args.reference {
        Some(p) => p.clone(),
        None => {
            let stem = args.exercise.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let dir = args.exercise.parent().unwrap_or(Path::new("")).join(stem).join("solutions");
            let found = ["reference.sh", "reference.rhai"].iter().map(|f| dir.join(f)).find(|p| p.is_file());
            match found {
                Some(p) => p,
                None => {
                    eprintln!(
                        "netlab: --explain: no reference solution: {} holds no reference.sh or reference.rhai (give one with --reference PATH)",
                        dir.display()
                    );
                    return Err(2);
                }
            }
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        eprintln!("netlab: --explain: {}: {e}", path.display());
        2
    })?;
    let commands: Vec<String> = match crate::engine::exercise::SolutionKind::of(&path) {
        Some(crate::engine::exercise::SolutionKind::Rhai) => {
            let name = stem(&path);
            let solution = crate::engine::exercise::Solution {
                name,
                text,
                kind: crate::engine::exercise::SolutionKind::Rhai,
                timeout: Duration::from_secs(60),
            };
            let options =
                crate::engine::session::RunOptions { silent: true, solution: Some(solution), ..Default::default() };
            let run = super::model::run_model(&args.exercise, &[], &options)?;
            match run.outcome.solution_commands {
                Some(Ok(commands)) => commands,
                Some(Err(mistake)) => {
                    eprintln!("netlab: --explain: the reference solution does not run: {mistake}");
                    return Err(2);
                }
                None => Vec::new(),
            }
        }
        // A script: its commands, without comments, blank lines and `set` options.
        _ => text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && !l.starts_with("set "))
            .map(String::from)
            .collect(),
    };
    let mut out = format!(
        "Reference solution ({}):
",
        path.display()
    );
    for c in commands {
        out += &format!(
            "  {c}
"
        );
    }
    Ok(out)
}

/// Solutions named on the command line, and the *.sh files of folders (not
/// recursive, sorted).
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if !path.is_dir() {
        return Err(format!("--solution {}: no such file or folder", path.display()));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("--solution {}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && crate::engine::exercise::SolutionKind::of(p).is_some())
        .collect();
    if found.is_empty() {
        return Err(format!("--solution {}: the folder holds no *.sh or *.rhai solution", path.display()));
    }
    found.sort();
    out.extend(found);
    Ok(())
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

pub fn grade(args: &GradeArgs) -> i32 {
    // The exercise first, through the model: a mistake in it is reported once, at
    // its line, before any sandbox is made.
    let run = match super::model::run_model(&args.exercise, &[], &super::model::quiet()) {
        Ok(run) => run,
        Err(code) => return code,
    };
    let Some(exercise) = &run.outcome.exercise else {
        eprintln!("netlab: {} is not an exercise: it calls no exercise()", args.exercise.display());
        return 2;
    };
    if exercise.tasks.is_empty() {
        eprintln!("netlab: {} has no task(): nothing to grade", args.exercise.display());
        return 2;
    }
    if args.explain {
        let shown = explain(args);
        let printed = match args.format {
            GradeFormat::Human => shown.map(|text| print!("{text}")),
            GradeFormat::Json | GradeFormat::Csv => shown.map(|text| eprint!("{text}")),
        };
        if let Err(code) = printed {
            return code;
        }
        if args.solutions.is_empty() {
            return 0;
        }
    }
    let tasks: Vec<TaskInfo> =
        exercise.tasks.iter().map(|t| TaskInfo { title: t.title.clone(), points: t.points }).collect();
    let mut solutions = Vec::new();
    for p in &args.solutions {
        if let Err(e) = collect(p, &mut solutions) {
            eprintln!("netlab: {e}");
            return 2;
        }
    }
    solutions.sort();
    solutions.dedup();
    let mut names: Vec<String> = solutions.iter().map(|s| stem(s)).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        eprintln!("netlab: two solutions are named {} (a student is named by the file's stem)", w[0]);
        return 2;
    }
    let html = match args.html.as_deref().map(super::grade_html::HtmlReport::create).transpose() {
        Ok(h) => h,
        Err(code) => return code,
    };
    let Some(exe) = super::own_exe() else { return 3 };
    let Some(runtime) = super::runtime() else { return 3 };
    let started = Instant::now();
    let (mut records, signal) = runtime.block_on(grade_all(args, &exe, &solutions, &tasks));
    // In the order of the students' names, whatever folders they came from.
    records.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(sig) = signal {
        eprintln!("netlab: stopped by a signal");
        return 128 + sig;
    }
    let printed = match args.format {
        GradeFormat::Human => {
            println!("Exercise: {}", exercise.title);
            if let Some(summary) = &exercise.summary {
                println!("  {summary}");
            }
            print!("{}", table(&tasks, &records));
            println!(
                "graded {} solution{} of {} in {}",
                records.len(),
                if records.len() == 1 { "" } else { "s" },
                args.exercise.display(),
                fmt_duration(started.elapsed())
            );
            Ok(())
        }
        GradeFormat::Json => serde_json::to_string_pretty(&records).map(|j| println!("{j}")).map_err(|e| e.to_string()),
        GradeFormat::Csv => write_csv(&tasks, &records).map_err(|e| e.to_string()),
    };
    if let Err(e) = printed {
        eprintln!("netlab: cannot write the report: {e}");
        return 3;
    }
    if let Some(Err(code)) = html.map(|h| h.write(exercise, &args.exercise, &records)) {
        return code;
    }
    // Nothing could be graded because of what the machine lacks (no sandbox).
    if records.iter().all(|r| r.outcome == "error" && r.message.as_deref().is_some_and(|m| m.contains("exit code 3"))) {
        return 3;
    }
    0
}

async fn grade_all(
    args: &GradeArgs,
    exe: &Path,
    solutions: &[PathBuf],
    tasks: &[TaskInfo],
) -> (Vec<Record>, Option<i32>) {
    let jobs = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| JOBS_PER_CPU * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
        .max(1);
    let permits = Rc::new(Semaphore::new(jobs));
    let kill = Rc::new(tokio::sync::Notify::new());
    let killed = Rc::new(std::cell::Cell::new(None));
    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    let max_points: i64 = tasks.iter().map(|t| t.points).sum();
    let blank: Vec<TaskGrade> = tasks
        .iter()
        .map(|t| TaskGrade {
            title: t.title.clone(),
            points: 0,
            max_points: t.points,
            passed: false,
            message: Some("not graded".into()),
            hint: None,
            hints_reached: 0,
            error: false,
        })
        .collect();
    for solution in solutions {
        let (permits, kill, killed, exe) = (permits.clone(), kill.clone(), killed.clone(), exe.to_path_buf());
        let child_args = vec![
            "run".to_string(),
            args.exercise.display().to_string(),
            "--solution".into(),
            solution.display().to_string(),
            "--solution-timeout".into(),
            args.timeout.to_string(),
            "--slow-factor".into(),
            args.slow_factor.to_string(),
        ];
        // The starting state and the grading after the solution's own timeout.
        let allowance = Duration::from_secs_f64(args.timeout + 120.0 * args.slow_factor);
        let (name, blank) = (stem(solution), blank.clone());
        handles.push(local.spawn_local(async move {
            let _permit = permits.acquire().await.ok()?;
            if killed.get().is_some() {
                return None;
            }
            Some(grade_one(&exe, &child_args, name, allowance, &kill, blank, max_points).await)
        }));
    }
    let (k, sig) = (kill.clone(), killed.clone());
    local.spawn_local(async move {
        let Some(got) = super::stop_signal().await else { return };
        sig.set(Some(got));
        k.notify_waiters();
    });
    let records = local.run_until(super::joined(handles)).await;
    (records, killed.get())
}

/// One solution: `netlab run EXERCISE --solution SCRIPT --grade-json FILE`, killed
/// with its sandbox past its allowance or on a signal.
async fn grade_one(
    exe: &Path,
    child_args: &[String],
    name: String,
    allowance: Duration,
    kill: &tokio::sync::Notify,
    blank: Vec<TaskGrade>,
    max_points: i64,
) -> Record {
    let started = Instant::now();
    let failed = |message: String, started: Instant| Record {
        name: name.clone(),
        tasks: blank.clone(),
        points: 0,
        max_points,
        duration_s: started.elapsed().as_secs_f64(),
        outcome: "error",
        solution_exit: None,
        message: Some(message),
    };
    let (Ok(grade_file), Ok(output)) = (tempfile::NamedTempFile::new(), tempfile::tempfile()) else {
        return failed("cannot make a temporary file".into(), started);
    };
    let mut command = Command::new(exe);
    command.args(child_args).arg("--grade-json").arg(grade_file.path()).stdin(Stdio::null());
    match (output.try_clone(), output.try_clone()) {
        (Ok(o), Ok(e)) => {
            command.stdout(Stdio::from(o)).stderr(Stdio::from(e));
        }
        _ => return failed("cannot share the run's output file".into(), started),
    }
    command.process_group(0);
    super::die_with_parent(command.as_std_mut());
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start netlab run: {e}"), started),
    };
    let status = tokio::select! {
        status = child.wait() => Some(status.ok().and_then(|s| s.code())),
        _ = tokio::time::sleep(allowance) => None,
        _ = kill.notified() => None,
    };
    if status.is_none() {
        super::test::kill_lab(&mut child).await;
    }
    let text = tail(output);
    let grade: Option<Grade> =
        std::fs::read_to_string(grade_file.path()).ok().and_then(|j| serde_json::from_str(&j).ok());
    match (status, grade) {
        (Some(_), Some(g)) => Record {
            name: name.clone(),
            tasks: g.tasks,
            points: g.points,
            max_points: g.max_points,
            duration_s: started.elapsed().as_secs_f64(),
            outcome: if g.solution_timed_out { "timeout" } else { "graded" },
            solution_exit: g.solution_exit,
            message: None,
        },
        (Some(code), None) => {
            failed(format!("netlab run ended with exit code {} before grading: {text}", code.unwrap_or(128)), started)
        }
        (None, _) => {
            failed(format!("not graded within {} (killed with its sandbox): {text}", fmt_duration(allowance)), started)
        }
    }
}

/// The end of a run's output: what says why it was not graded.
fn tail(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let _ = file.seek(std::io::SeekFrom::Start(0));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(6)..].join("\n")
}

/// The human table: a row per student, a column per task, the next hint of the
/// first task not passed; the tasks' titles under it.
fn table(tasks: &[TaskInfo], records: &[Record]) -> String {
    let width = records.iter().map(|r| r.name.chars().count()).max().unwrap_or(0).max("student".len());
    let mut out = format!("{:width$}  points ", "student");
    for i in 1..=tasks.len() {
        out += &format!(" {i:>2}");
    }
    out += "  next hint\n";
    for r in records {
        let points = format!("{}/{}", r.points, r.max_points);
        out += &format!("{:width$}  {points:>6} ", r.name);
        for t in &r.tasks {
            out += if t.passed { "  ✓" } else { "  ✗" };
        }
        let next = r.tasks.iter().enumerate().find(|(_, t)| !t.passed);
        // A script that failed is worth saying: its output (netlab run --solution) says why.
        let status = match (r.outcome, r.solution_exit) {
            ("timeout", _) => "(stopped at --timeout) ".to_string(),
            ("graded", Some(code)) if code != 0 => format!("(script exit {code}) "),
            _ => String::new(),
        };
        let hint = match (r.outcome, &r.message, next) {
            ("error", Some(m), _) => format!("not graded: {}", m.lines().next().unwrap_or_default()),
            (_, _, Some((i, t))) => {
                format!("{status}task {}: {}", i + 1, t.hint.as_deref().or(t.message.as_deref()).unwrap_or(""))
            }
            _ => status.trim_end().to_string(),
        };
        out += format!("  {hint}").trim_end();
        out += "\n";
    }
    out += "tasks:\n";
    for (i, t) in tasks.iter().enumerate() {
        out += &format!("  {:>2}. {} ({} pt)\n", i + 1, t.title, t.points);
    }
    out
}

/// One row per student: name, points, outcome, duration, then each task's points.
fn write_csv(tasks: &[TaskInfo], records: &[Record]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(std::io::stdout().lock());
    let mut header =
        vec!["name".to_string(), "points".into(), "max_points".into(), "outcome".into(), "duration_s".into()];
    header.extend(tasks.iter().map(|t| t.title.clone()));
    w.write_record(&header)?;
    for r in records {
        let mut row = vec![
            r.name.clone(),
            r.points.to_string(),
            r.max_points.to_string(),
            r.outcome.to_string(),
            format!("{:.3}", r.duration_s),
        ];
        row.extend(r.tasks.iter().map(|t| t.points.to_string()));
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}
