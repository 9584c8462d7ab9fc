//! Command line: `netlab run`, `check`, `plan`, `graph`, `export`, `test`, `prove`, `functions`.

mod exercise;
mod grade;
mod grade_html;
mod model;
mod prove;
mod run;
mod sh;
mod test;
mod vm;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::limits::{self, Limits};

#[derive(Parser)]
#[command(name = "netlab", version, about = "Network-namespace tutorials as self-checking Rhai labs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// The lab file (.rhai).
    pub lab: PathBuf,
    /// Set a constant visible to the lab, e.g. --set n=100 (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Multiply every deadline (ping timeouts, readiness waits) for slow machines
    /// (above 0, at most 1000).
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = limits::parse_slow_factor)]
    pub slow_factor: f64,
    /// Stop the lab after this many seconds of wall-clock time (exit 2); default 3600.
    #[arg(long, value_name = "SECONDS", value_parser = limits::parse_max_time)]
    pub max_time: Option<std::time::Duration>,
    /// Stop the lab's script after this many Rhai operations (exit 2); default 100000000.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_operations: Option<u64>,
    /// After the lab, open a shell inside the sandbox (the lab's host) to look around.
    #[arg(long)]
    pub keep: bool,
    /// Under each step, show the commands (`ip`, `iptables`, `sysctl`, `ping`, ...)
    /// equivalent to what netlab did.
    #[arg(long)]
    pub explain: bool,
    /// Under each step, show what changed in the kernel (links, addresses, routes, rules).
    #[arg(long)]
    pub diff: bool,
    /// Stop after this step (its number or its exact title); with --keep, stay there.
    #[arg(long, value_name = "STEP")]
    pub until: Option<String>,
    /// Show a folder of the machine inside the sandbox at its own path, read-only
    /// (DIR) or writable (DIR:rw; what the lab writes there stays, written as the
    /// sandbox's user: yours, or nobody when netlab runs as root). The lab's own
    /// folder is always shown read-only; everything else the lab writes vanishes
    /// with the sandbox.
    #[arg(long = "bind", value_name = "DIR[:rw]")]
    pub bind: Vec<String>,
    /// At the end, write the normalized kernel state (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Report format on stdout: human (as it runs), json or tap (at the end; the
    /// human output then goes to stderr).
    #[arg(long, value_enum, default_value = "human")]
    pub format: crate::results::Format,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// For an exercise: run this bash script (a student's solution) in the lab's host
    /// after the starting state, stdin closed, then grade every task.
    #[arg(long, value_name = "SCRIPT")]
    pub solution: Option<PathBuf>,
    /// Stop the solution (and every process it started) after this many seconds; the
    /// tasks are then graded as they stand.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS", value_parser = test::parse_timeout)]
    pub solution_timeout: f64,
    /// Write the exercise's grade (JSON) to FILE (for `netlab grade`).
    #[arg(long, value_name = "FILE", hide = true)]
    pub grade_json: Option<PathBuf>,
    /// Append the run's events (JSON lines) to FILE as they happen (for `netlab test`).
    #[arg(long, value_name = "FILE", hide = true)]
    pub events: Option<PathBuf>,
    /// Run the lab in a small VM booted with this kernel and the machine's own
    /// root file system (read-only), through virtme-ng and QEMU: a vmlinuz file,
    /// `debian` (the newest /boot/vmlinuz-* whose modules are in /lib/modules), or
    /// a release in /boot. Output, reports and exit code are those of the run
    /// inside; the reports name the kernel.
    #[arg(long, value_name = "IMAGE")]
    pub kernel: Option<String>,
}

impl RunArgs {
    /// The limits asked for, the defaults for the rest.
    pub fn limits(&self) -> Limits {
        let default = Limits::default();
        Limits {
            max_time: self.max_time.unwrap_or(default.max_time),
            max_operations: self.max_operations.unwrap_or(default.max_operations),
        }
    }
}

/// A lab and its settings, for the commands that only read it (plan, graph, export).
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// The lab file (.rhai).
    pub lab: PathBuf,
    /// Set a constant visible to the lab, e.g. --set n=100 (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Subcommand)]
enum Command {
    /// Build the lab in a private sandbox, check every claim, tear everything down.
    Run(RunArgs),
    /// Lint labs without root or kernel: run each against netlab's model of the
    /// network and report mistakes with the line they are on.
    Check {
        /// Lab files.
        #[arg(required = true)]
        labs: Vec<PathBuf>,
        /// Set a constant visible to the labs, e.g. --set n=100 (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Print what the lab would create, step by step, as commands; no root needed.
    Plan(ModelArgs),
    /// Draw the lab's network (nodes, links, addresses, NAT) as mermaid or graphviz dot.
    Graph {
        #[command(flatten)]
        lab: ModelArgs,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
    },
    /// Write the lab as a standalone bash script (ip, iptables, sysctl, ping, curl).
    Export(ModelArgs),
    /// Run many labs in parallel, each in its own sandbox.
    Test(test::TestArgs),
    /// Grade students' solutions (bash scripts) of an exercise, each in its own
    /// sandbox: points, tasks passed, the next hint; as a table, JSON or CSV.
    Grade(grade::GradeArgs),
    /// Work on an exercise: its starting state in a sandbox and a shell there;
    /// `check` in the shell grades the tasks and shows the next hints.
    Exercise(exercise::ExerciseArgs),
    /// Show that every check of a lab can fail: run it with each `// break:` tag
    /// removed and each `// fix:` applied early.
    Prove(prove::ProveArgs),
    /// Run a shell script (e.g. `ip` commands) in a fresh sandbox; --state writes a snapshot of what it built.
    Sh(sh::ShArgs),
    /// List the functions a lab can call.
    Functions {
        /// Print Markdown (for the book's reference).
        #[arg(long)]
        markdown: bool,
    },
}

/// Diagnostics look the same everywhere (tests read them): Unicode drawing always,
/// colour only on a terminal without NO_COLOR, no wrapping when not on a terminal.
/// The results of tasks spawned on a LocalSet, in their order, leaving out those
/// that gave nothing (stopped before they started) or panicked.
async fn joined<T>(handles: Vec<tokio::task::JoinHandle<Option<T>>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        if let Ok(Some(r)) = h.await {
            out.push(r);
        }
    }
    out
}

/// Runs a program of netlab's own in the sandbox (the script of `netlab sh`, the
/// shell of `--keep`) to its end; a stop signal kills it and gives None, so SIGINT
/// and SIGTERM end those runs as they end a lab.
fn run_program(
    lab: &netlab_runtime::Lab,
    mut command: tokio::process::Command,
) -> Option<std::io::Result<std::process::ExitStatus>> {
    command.kill_on_drop(true);
    lab.block_on(netlab_runtime::interrupt::unless_interrupted(async move { command.status().await })).ok()
}

fn setup_diagnostics() {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let color = tty && std::env::var_os("NO_COLOR").is_none();
    let _ = miette::set_hook(Box::new(move |_| {
        let mut opts = miette::MietteHandlerOpts::new().unicode(true).color(color).terminal_links(false);
        if !tty {
            opts = opts.width(400);
        }
        Box::new(opts.build())
    }));
}

pub fn main() -> i32 {
    setup_diagnostics();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Check { labs, set } => model::check(&labs, &set),
        Command::Plan(args) => model::plan(&args),
        Command::Graph { lab, format } => model::graph(&lab, format),
        Command::Export(args) => model::export(&args),
        Command::Test(args) => test::test(&args),
        Command::Grade(args) => grade::grade(&args),
        Command::Exercise(args) => exercise::exercise(&args),
        Command::Prove(args) => prove::prove(&args),
        Command::Sh(args) => sh::sh(&args),
        Command::Functions { markdown } => {
            print_functions(markdown);
            0
        }
    }
}

fn print_functions(markdown: bool) {
    use crate::engine::api::FUNCTIONS;
    if markdown {
        println!("| function | what it does |\n|---|---|");
        for f in FUNCTIONS {
            println!("| `{}` | {} |", f.usage.replace('|', "\\|"), f.doc.replace('|', "\\|"));
        }
    } else {
        for f in FUNCTIONS {
            println!("{}\n    {}", f.usage, f.doc);
        }
    }
}

/// The child is killed when netlab dies (PR_SET_PDEATHSIG, kept across exec).
pub(crate) fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// netlab's own executable, which the commands that run labs as children start
/// (None, said on stderr, when it cannot be found: exit 3).
pub(crate) fn own_exe() -> Option<std::path::PathBuf> {
    std::env::current_exe().map_err(|e| eprintln!("netlab: cannot find my own executable: {e}")).ok()
}

/// The single-threaded runtime the commands that run labs as children wait on
/// (None, said on stderr, when it cannot start: exit 3).
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("netlab: cannot start: {e}"))
        .ok()
}

/// Waits for SIGINT or SIGTERM to this process: the signal, once it comes (None when
/// they cannot be watched). What `netlab test` and `netlab grade` stop their
/// children on.
pub(crate) async fn stop_signal() -> Option<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term) = (signal(SignalKind::interrupt()).ok()?, signal(SignalKind::terminate()).ok()?);
    Some(tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
    })
}
