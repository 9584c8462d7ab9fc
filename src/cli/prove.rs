//! `netlab prove`: shows that every check of a lab can fail. Each `// break:` tag
//! and each `// fix:` line (see proof.rs) becomes a mutated copy of the lab, run by
//! `netlab run` in its own sandbox; the case is proven when that run fails a check
//! (exit 1) exactly where the markers say.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::proof::{code_part, Case, Proofs};
use crate::report::fmt_duration;

#[derive(clap::Args)]
pub struct ProveArgs {
    /// Lab files or directories (searched recursively for *.rhai).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Mutated labs run at the same time (default: number of CPUs).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Passed on to every `netlab run`.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = crate::engine::limits::parse_slow_factor)]
    slow_factor: f64,
    /// Prove the labs inside one VM booted with this kernel (as `netlab run --kernel`):
    /// for labs that need what this machine's kernel lacks.
    #[arg(long, value_name = "IMAGE")]
    kernel: Option<String>,
}

/// `netlab prove ... --kernel IMAGE`: the same command inside one VM.
fn prove_in_vm(args: &ProveArgs, spec: &str) -> i32 {
    let vm = match super::vm::Vm::prepare(spec) {
        Ok(vm) => vm,
        Err(code) => return code,
    };
    let Some(exe) = super::own_exe() else { return 3 };
    let mut inner: Vec<std::ffi::OsString> = vec!["prove".into()];
    for p in &args.paths {
        match std::path::absolute(p) {
            Ok(p) => inner.push(p.into()),
            Err(e) => {
                eprintln!("netlab: {}: {e}", p.display());
                return 2;
            }
        }
    }
    if let Some(j) = args.jobs {
        inner.extend(["--jobs".into(), j.to_string().into()]);
    }
    inner.extend(["--slow-factor".into(), vm.slow_factor(args.slow_factor).to_string().into()]);
    // A proof is a few runs of each lab, each ending by itself (its own --max-time).
    let deadline = std::time::Duration::from_secs(3600) + super::vm::BOOT_ALLOWANCE;
    match vm.run(&exe, &inner, &[], &[], deadline) {
        super::vm::VmEnd::Exited(code) => code,
        super::vm::VmEnd::Failed(why) => {
            eprintln!("netlab: the VM ({}) failed: {why}", vm.describe());
            3
        }
        super::vm::VmEnd::TimedOut(after) => {
            eprintln!("netlab: the VM ({}) was still running after {} s: stopped", vm.describe(), after.as_secs());
            1
        }
        super::vm::VmEnd::Signal(sig) => 128 + sig,
    }
}

/// How a case whose mutated lab is a script error starts its message: the marker
/// itself is wrong (a `fix:` statement that does not parse, a `break:` on a line
/// whose removal leaves an unknown variable), which is the lab's mistake.
const MARKER_MISTAKE: &str = "marker mistake";

struct Job<'a> {
    lab: &'a Path,
    text: &'a str,
    proofs: &'a Proofs,
    case: Case,
}

/// How a mutated run ended: its exit code and the original line it stopped at.
fn verdict(job: &Job, code: i32, stdout: &str, origin: &[usize]) -> Result<String, String> {
    let line = stdout
        .lines()
        .last()
        .and_then(|l| l.rsplit_once(" at line ").map(|(_, n)| n))
        .and_then(|n| n.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    let original = line.and_then(|l| origin.get(l.wrapping_sub(1))).copied();
    let shown =
        |l: usize| job.text.lines().nth(l.wrapping_sub(1)).map(|s| code_part(s).trim()).unwrap_or("").to_string();
    match (code, original) {
        (0, _) => Err(match &job.case {
            Case::Break { tag } => format!("the lab still passes without the lines of {tag:?}"),
            Case::Fix { line, .. } => format!("the check at line {line} still passes with the fix: it cannot fail"),
        }),
        (1, Some(l)) if job.proofs.expected_failure(&job.case, l) => Ok(format!("fails at line {l}: {}", shown(l))),
        (1, Some(l)) => Err(format!(
            "failed at line {l} ({}), expected {}",
            shown(l),
            match &job.case {
                Case::Break { tag } => format!("a check marked `needs: {tag}` (lines {:?})", job.proofs.needing(tag)),
                Case::Fix { line, .. } => format!("line {line}"),
            }
        )),
        (2, _) => Err(format!("{MARKER_MISTAKE}: the lab with this case is not a valid lab (exit 2):\n{stdout}")),
        (c, _) => Err(format!("exit code {c}, expected a failed check (exit 1):\n{stdout}")),
    }
}

/// The folder a lab's cases run in: one per lab folder, holding a copy of what is
/// beside the lab, so that what the lab reads by a relative path (`nft_file(n,
/// "office.nft")`, `import "helpers"`) is there for its cases too. Copies, not links:
/// the sandbox shows a lab its own folder, and a link's target elsewhere (under
/// /tmp, say) may not be visible in it. Made once, before the cases run in parallel.
fn case_dir(dir: &Path, lab: &Path) -> Result<std::path::PathBuf, String> {
    let folder = lab.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = folder.canonicalize().map_err(|e| format!("cannot read {}: {e}", folder.display()))?;
    let name: String =
        folder.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let cases = dir.join(name);
    if cases.is_dir() {
        return Ok(cases);
    }
    let mut budget = CASE_COPY_LIMIT;
    copy_folder(&folder, &cases, &mut budget)?;
    Ok(cases)
}

/// What a lab's folder may hold for its cases to get a copy of it.
const CASE_COPY_LIMIT: u64 = 64 << 20;

fn copy_folder(from: &Path, to: &Path, budget: &mut u64) -> Result<(), String> {
    std::fs::create_dir(to).map_err(|e| format!("cannot make {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        // Through links, as the lab itself would read them.
        let Ok(meta) = std::fs::metadata(&source) else { continue };
        if meta.is_dir() {
            copy_folder(&source, &target, budget)?;
        } else if meta.is_file() {
            *budget = budget.checked_sub(meta.len()).ok_or_else(|| {
                format!(
                    "{} holds more than {} MiB beside the lab: netlab prove copies a lab's folder for its cases",
                    from.display(),
                    CASE_COPY_LIMIT >> 20
                )
            })?;
            std::fs::copy(&source, &target).map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
        }
    }
    Ok(())
}

fn run_case(exe: &Path, dir: &Path, index: usize, job: &Job, slow_factor: f64) -> Result<String, String> {
    let (text, origin) = Proofs::mutate(job.text, &job.case);
    let stem = job.lab.file_stem().and_then(|s| s.to_str()).unwrap_or("lab");
    let path = case_dir(dir, job.lab)?.join(format!("{stem}.case{index}.rhai"));
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let out = Command::new(exe)
        .arg("run")
        .arg(&path)
        .arg("--slow-factor")
        .arg(slow_factor.to_string())
        .output()
        .map_err(|e| format!("cannot start netlab: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = verdict(job, out.status.code().unwrap_or(128), &stdout, &origin);
    result.map_err(|e| {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).take(12).collect();
        if tail.is_empty() {
            e
        } else {
            format!("{e}\n      {}", tail.join("\n      "))
        }
    })
}

pub fn prove(args: &ProveArgs) -> i32 {
    if let Some(spec) = &args.kernel {
        return prove_in_vm(args, spec);
    }
    let mut labs = Vec::new();
    for p in &args.paths {
        if let Err(e) = super::test::collect(p, &mut labs) {
            eprintln!("netlab: {e}");
            return 2;
        }
    }
    let mut texts = Vec::new();
    for lab in &labs {
        match std::fs::read_to_string(lab) {
            Ok(t) => texts.push(t),
            Err(e) => {
                eprintln!("netlab: cannot read {}: {e}", lab.display());
                return 2;
            }
        }
    }
    let proofs: Vec<Proofs> = texts.iter().map(|t| Proofs::read(t)).collect();
    let mut code = 0;
    for (lab, p) in labs.iter().zip(&proofs) {
        for (line, problem) in &p.problems {
            let at = if *line > 0 { format!(":{line}") } else { String::new() };
            eprintln!("netlab: {}{at}: {problem}", lab.display());
            code = 2;
        }
    }
    let jobs: Vec<Job> = labs
        .iter()
        .zip(&texts)
        .zip(&proofs)
        .flat_map(|((lab, text), proofs)| {
            proofs.cases.iter().map(move |case| Job { lab, text, proofs, case: case.clone() })
        })
        .collect();
    let Some(exe) = super::own_exe() else { return 3 };
    let dir = match tempfile::Builder::new().prefix("netlab-prove-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("netlab: cannot make a temporary folder: {e}");
            return 3;
        }
    };
    // Each lab folder's case folder, with its links, before the cases run in parallel.
    for job in &jobs {
        if let Err(e) = case_dir(dir.path(), job.lab) {
            eprintln!("netlab: {e}");
            return 3;
        }
    }
    let started = Instant::now();
    let workers = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<String, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1).min(jobs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let r = run_case(&exe, dir.path(), i, job, args.slow_factor);
                if let Ok(mut all) = results.lock() {
                    all.push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    let mut unproven = 0;
    let mut mistakes = 0;
    let mut current: Option<&Path> = None;
    for (i, result) in &results {
        let job = &jobs[*i];
        if current != Some(job.lab) {
            println!("{}", job.lab.display());
            current = Some(job.lab);
        }
        match result {
            Ok(how) => println!("  ✓ {}: {how}", job.case.describe()),
            Err(why) => {
                unproven += 1;
                if why.starts_with(MARKER_MISTAKE) {
                    mistakes += 1;
                }
                println!("  ✗ {}: {why}", job.case.describe());
            }
        }
    }
    println!(
        "{} of {} cases proven in {} labs ({})",
        results.len() - unproven,
        results.len(),
        labs.len(),
        fmt_duration(started.elapsed())
    );
    if mistakes > 0 {
        code = 2;
    } else if unproven > 0 {
        code = code.max(1);
    }
    code
}
