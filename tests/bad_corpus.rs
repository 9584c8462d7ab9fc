//! The bad-input corpus: every lab in tests/bad/ is broken on purpose and says, in its
//! first line, how netlab must answer:
//!
//! ```text
//! // expect: exit CODE line LINE ["SUBSTRING"] [unless-installed PROGRAM]
//! ```
//!
//! `netlab run` must exit with CODE (1 a failed check, 2 the lab's mistake, 3 what the
//! machine lacks), its first diagnostic must point at LINE (`[path:LINE:COL]`), stderr
//! must contain SUBSTRING (no `"` inside), and nothing may panic. `unless-installed`
//! skips a case where PROGRAM is installed (a missing tool is exit 3 only where it is
//! missing). The machine's network state is the same after the whole corpus.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct Expect {
    code: i32,
    line: usize,
    needle: Option<String>,
    unless_installed: Option<String>,
}

fn parse_expect(path: &Path) -> Expect {
    let text = std::fs::read_to_string(path).expect("read lab");
    let first = text.lines().next().unwrap_or_default();
    let bad = |why: &str| -> ! { panic!("{}: {why}: {first:?}", path.display()) };
    let rest = first.strip_prefix("// expect: exit ").unwrap_or_else(|| bad("no `// expect: exit` first line"));
    let (code, rest) = rest.split_once(" line ").unwrap_or_else(|| bad("no `line`"));
    let (line, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut needle = None;
    if let Some(quoted) = rest.strip_prefix('"') {
        let (n, after) = quoted.split_once('"').unwrap_or_else(|| bad("an unclosed quote"));
        needle = Some(n.to_string());
        rest = after.trim_start();
    }
    let unless_installed = match rest {
        "" => None,
        r => Some(r.strip_prefix("unless-installed ").unwrap_or_else(|| bad("unknown words")).to_string()),
    };
    Expect {
        code: code.parse().unwrap_or_else(|_| bad("exit code")),
        line: line.parse().unwrap_or_else(|_| bad("line")),
        needle,
        unless_installed,
    }
}

fn installed(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(program).is_file())
}

fn corpus() -> Vec<PathBuf> {
    let mut labs: Vec<PathBuf> = std::fs::read_dir(common::root().join("tests/bad"))
        .expect("tests/bad")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    labs.sort();
    labs
}

/// What is wrong with netlab's answer to one lab, if anything.
fn judge(lab: &Path, expect: &Expect) -> Option<String> {
    let (code, out, err) = common::run_lab(lab, &[]);
    let name = lab.file_name().expect("a file").to_string_lossy();
    let show = || format!("{name}: {expect:?}\n--- stdout:\n{out}\n--- stderr:\n{err}");
    if code == 101 || err.contains("panicked") {
        return Some(format!("PANIC in {}", show()));
    }
    if code != expect.code {
        return Some(format!("exit {code}, not {}: {}", expect.code, show()));
    }
    let marker = format!("[{}:", lab.display());
    let line = err.split(&marker).nth(1).and_then(|rest| rest.split(':').next()?.parse::<usize>().ok());
    if line != Some(expect.line) {
        return Some(format!("diagnostic at line {line:?}, not {}: {}", expect.line, show()));
    }
    match &expect.needle {
        Some(needle) if !err.contains(needle.as_str()) => Some(format!("{needle:?} not in stderr: {}", show())),
        _ => None,
    }
}

#[test]
fn every_bad_lab_fails_as_it_says() {
    let labs = corpus();
    assert!(labs.len() >= 60, "only {} labs in tests/bad", labs.len());
    let cases: Vec<(PathBuf, Expect)> = labs.into_iter().map(|p| (p.clone(), parse_expect(&p))).collect();
    let before = common::machine_state();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    let skipped = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while let Some((lab, expect)) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Some(program) = expect.unless_installed.as_deref().filter(|p| installed(p)) {
                        skipped.lock().expect("lock").push(format!("{} ({program} is installed)", lab.display()));
                        continue;
                    }
                    if let Some(problem) = judge(lab, expect) {
                        problems.lock().expect("lock").push(problem);
                    }
                }
            });
        }
    });
    let took = started.elapsed();
    let skipped = skipped.into_inner().expect("lock");
    eprintln!("{} bad labs in {took:.1?}; skipped: {skipped:?}", cases.len());
    let problems = problems.into_inner().expect("lock");
    assert!(problems.is_empty(), "{} of {} labs:\n\n{}", problems.len(), cases.len(), problems.join("\n\n"));
    assert_eq!(before, common::machine_state(), "the corpus changed the machine");
}

#[test]
fn the_expect_line_is_parsed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = dir.path().join("x.rhai");
    std::fs::write(&lab, "// expect: exit 3 line 4 \"apt-get install x\" unless-installed nginx\n").expect("write");
    let e = parse_expect(&lab);
    assert_eq!((e.code, e.line), (3, 4));
    assert_eq!(e.needle.as_deref(), Some("apt-get install x"));
    assert_eq!(e.unless_installed.as_deref(), Some("nginx"));
    std::fs::write(&lab, "// expect: exit 1 line 12\n").expect("write");
    let e = parse_expect(&lab);
    assert_eq!((e.code, e.line, e.needle, e.unless_installed), (1, 12, None, None));
}
