//! `netlab test`: many labs at once, each `netlab run` in its own process and
//! sandbox; a line per lab, the output of failures, optional JUnit XML.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::report::fmt_duration;

#[derive(clap::Args)]
pub struct TestArgs {
    /// Lab files or directories (searched recursively for *.rhai).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Labs run at the same time (default: 4 per CPU: a lab mostly waits on the
    /// kernel and on its checks' windows, so running more at once than there are
    /// CPUs shortens the suite).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Passed on to every `netlab run`.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    slow_factor: f64,
}

struct LabResult {
    path: PathBuf,
    code: i32,
    output: String,
    took: Duration,
}

/// Lab files named on the command line, and the *.rhai files in folders (recursively).
pub(super) fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "rhai") {
                collect(&e, out)?;
            }
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    } else {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} does not exist", path.display())));
    }
    Ok(())
}

pub fn test(args: &TestArgs) -> i32 {
    let mut labs = Vec::new();
    for p in &args.paths {
        if let Err(e) = collect(p, &mut labs) {
            eprintln!("netlab: {}: {e}", p.display());
            return 2;
        }
    }
    if labs.is_empty() {
        eprintln!("netlab: no .rhai labs found");
        return 2;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("netlab: cannot find my own executable: {e}");
            return 3;
        }
    };
    let jobs =
        args.jobs.unwrap_or_else(|| 4 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(labs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(path) = labs.get(i) else { break };
                let t = Instant::now();
                let out = Command::new(&exe)
                    .arg("run")
                    .arg(path)
                    .arg("--slow-factor")
                    .arg(args.slow_factor.to_string())
                    .output();
                let (code, output) = match out {
                    Ok(o) => (
                        o.status.code().unwrap_or(128),
                        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
                    ),
                    Err(e) => (3, format!("cannot start netlab: {e}")),
                };
                let r = LabResult { path: path.clone(), code, output, took: t.elapsed() };
                let verdict = if r.code == 0 { "PASS" } else { "FAIL" };
                println!("{verdict} {} ({}){}", r.path.display(), fmt_duration(r.took), exit_note(r.code));
                if r.code != 0 {
                    for line in r.output.lines() {
                        println!("    {line}");
                    }
                }
                if let Ok(mut all) = results.lock() {
                    all.push(r);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by(|a, b| a.path.cmp(&b.path));
    let failed = results.iter().filter(|r| r.code != 0).count();
    let passed = results.len() - failed;
    println!("{passed} passed, {failed} failed ({} labs in {})", results.len(), fmt_duration(started.elapsed()));
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, junit(&results, started.elapsed())) {
            eprintln!("netlab: cannot write {}: {e}", path.display());
            return 3;
        }
    }
    if failed == 0 {
        0
    } else {
        1
    }
}

fn exit_note(code: i32) -> String {
    match code {
        0 => String::new(),
        1 => " — a check failed".into(),
        2 => " — script error".into(),
        3 => " — environment problem".into(),
        c => format!(" — exit code {c}"),
    }
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn junit(results: &[LabResult], total: Duration) -> String {
    let failed = results.iter().filter(|r| r.code != 0).count();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"netlab\" tests=\"{}\" failures=\"{failed}\" time=\"{:.3}\">\n",
        results.len(),
        total.as_secs_f64()
    );
    for r in results {
        let name = xml_escape(&r.path.display().to_string());
        x += &format!("  <testcase classname=\"netlab\" name=\"{name}\" time=\"{:.3}\">\n", r.took.as_secs_f64());
        if r.code != 0 {
            x += &format!(
                "    <failure message=\"exit code {}{}\">{}</failure>\n",
                r.code,
                xml_escape(&exit_note(r.code)),
                xml_escape(&r.output)
            );
        }
        x += &format!("    <system-out>{}</system-out>\n  </testcase>\n", xml_escape(&r.output));
    }
    x + "</testsuite>\n</testsuites>\n"
}
