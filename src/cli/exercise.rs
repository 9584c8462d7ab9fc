//! `netlab exercise FILE`: the exercise's starting state in a sandbox, and a shell
//! in it for the student, whose prompt names the exercise. The shell's `check`
//! grades the tasks against what is in the kernel then and shows each task passed
//! or not yet, the next hint of each failed one, and the score. Leaving the shell
//! tears everything down.
//!
//! `check` is a shell function that writes a line to a FIFO this process watches
//! and reads the grading's output from a second one: the Rhai engine that grades
//! stays on this process's thread, and the output is the command's own (it can be
//! piped, and a Ctrl-C ends the command, not the exercise).

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use netlab_runtime::backend::Backend;
use netlab_runtime::{Lab, LabOptions};

use crate::engine::diagnose::Source;
use crate::engine::exercise::{Grade, Shell};
use crate::engine::session::RunOptions;

#[derive(clap::Args)]
pub struct ExerciseArgs {
    /// The exercise (.rhai, calling exercise() and task()).
    exercise: PathBuf,
    /// The shell to open (bash, or another that reads a bash rc file).
    #[arg(long, default_value = "bash", value_name = "PROGRAM")]
    shell: String,
    /// Multiply every deadline by FACTOR (slow machines).
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = crate::engine::limits::parse_slow_factor)]
    slow_factor: f64,
}

/// Exit code: 0 when the student left the shell (whatever the score); 2 for a file
/// that is not a working exercise; 3 when the sandbox cannot be made.
pub fn exercise(args: &ExerciseArgs) -> i32 {
    // The exercise first, through the model: a mistake in it is reported at its
    // line before any sandbox is made.
    let checked = match super::model::run_model(&args.exercise, &[], &super::model::quiet()) {
        Ok(run) => run,
        Err(code) => return code,
    };
    let tasks: Vec<String> = match &checked.outcome.exercise {
        None => {
            eprintln!(
                "netlab: {} is not an exercise: it calls no exercise() (run a lab with `netlab run`)",
                args.exercise.display()
            );
            return 2;
        }
        Some(ex) if ex.tasks.is_empty() => {
            eprintln!("netlab: {} has no task(): nothing to check", args.exercise.display());
            return 2;
        }
        Some(ex) => {
            ex.tasks.iter().enumerate().map(|(i, t)| format!("  {}. {} ({} pt)", i + 1, t.title, t.points)).collect()
        }
    };
    let name = args.exercise.display().to_string();
    let text = match super::run::read_lab(&args.exercise) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let src = Source { path: &name, text: &text };
    let ast = match crate::engine::compile(&src) {
        Ok(ast) => ast,
        Err(d) => {
            super::run::report(*d);
            return 2;
        }
    };
    let lab_dir = std::path::absolute(&args.exercise)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let binds = match super::run::binds(&lab_dir, &[]) {
        Ok(b) => b,
        Err(c) => return c,
    };
    if let Err(e) = netlab_runtime::enter_sandbox(&binds) {
        eprintln!("{:?}", miette::Report::new(e));
        return 3;
    }
    let lab = match Lab::new(LabOptions { slow_factor: args.slow_factor, workdir: Some(lab_dir) }) {
        Ok(lab) => Rc::new(lab),
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return 3;
        }
    };
    let prompt_name = args.exercise.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(name.clone());
    let program = args.shell.clone();
    let idle = lab.clone();
    let no_shell = Rc::new(std::cell::Cell::new(false));
    let failed = no_shell.clone();
    let shell = Shell(Rc::new(move |grade_now| {
        // The lab's own servers (HTTP, DNS, UDP) answer the student's commands while
        // the shell waits for a `check`.
        let wait = |d: Duration| idle.sleep(d);
        student_shell(&program, &prompt_name, &tasks, &wait, grade_now).unwrap_or_else(|()| {
            failed.set(true);
            None
        })
    }));
    // A student takes the time they need; each check's probes keep their own deadlines.
    let limits = crate::engine::limits::Limits {
        max_time: Duration::from_secs_f64(crate::engine::limits::MAX_MAX_TIME_S),
        ..Default::default()
    };
    let options = RunOptions { limits, shell: Some(shell), ..RunOptions::default() };
    let outcome = crate::engine::run(lab.clone(), &options, &src, &ast, &[]);
    let code = match outcome.diagnostic {
        Some(d) => {
            let code = d.verdict.exit_code();
            super::run::report(*d);
            code
        }
        // What the machine lacks (the shell program, a FIFO): said where it happened.
        None if no_shell.get() => 3,
        None => {
            match &outcome.grade {
                Some(g) => {
                    println!("netlab: your last check: {}/{} points; everything is removed.", g.points, g.max_points)
                }
                None => println!("netlab: you left without a check; everything is removed."),
            }
            0
        }
    };
    lab.teardown();
    code
}

/// The two FIFOs of `check`, and its rc file, in a folder of the sandbox's own /tmp.
struct Channel {
    dir: tempfile::TempDir,
    /// The end `check` writes its request to (opened read-write: it never sees an end
    /// of file when a `check` closes it).
    ask: OwnedFd,
}

impl Channel {
    fn new(prompt: &str) -> std::io::Result<Channel> {
        let dir = tempfile::Builder::new().prefix("netlab-exercise-").tempdir()?;
        for fifo in ["ask", "answer"] {
            nix::unistd::mkfifo(&dir.path().join(fifo), nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        }
        let ask = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(dir.path().join("ask"))?
            .into();
        let d = dir.path().display();
        // `check` is a program on PATH, not a function: it works in the shells a
        // student starts too (`ip netns exec red bash`). It exits 0 when every task
        // passed: `check && echo done` works.
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin)?;
        let check = format!(
            "#!/bin/sh\n# netlab exercise: grade every task now, against what is in the kernel.\n\
             echo check > {d}/ask && cat {d}/answer && [ \"$(cat {d}/passed 2>/dev/null)\" = yes ]\n"
        );
        std::fs::write(bin.join("check"), check)?;
        std::fs::set_permissions(bin.join("check"), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let rc = format!(
            "PS1='(netlab: {prompt}) # '\n\
             case :$PATH: in *:/usr/sbin:*) ;; *) PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH ;; esac\n\
             export PATH={d}/bin:$PATH\n\
             HISTFILE={d}/history\n"
        );
        std::fs::write(dir.path().join("rc"), rc)?;
        Ok(Channel { dir, ask })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Whether `check` asked for a grading since the last call.
    fn asked(&self) -> bool {
        let mut buf = [0u8; 256];
        let mut asked = false;
        loop {
            // SAFETY: read(2) into our buffer, its length given; the FIFO is non-blocking.
            let n = unsafe { libc::read(self.ask.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            asked |= buf[..n as usize].windows(5).any(|w| w == b"check");
        }
        asked
    }

    /// The answer FIFO for writing, once `check`'s reader has opened it (it does
    /// right after asking; a check ended by Ctrl-C in between never does).
    fn answer(&self) -> Option<std::fs::File> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(self.path("answer"));
            match opened {
                Ok(file) => {
                    // Blocking writes from here on: the reader takes its time.
                    // SAFETY: F_SETFL on a descriptor we own.
                    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) };
                    return Some(file);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        None
    }
}

/// Runs the student's shell until they leave; each `check` grades the tasks with
/// `grade_now`, its output going to the `check` command. Gives the last grade;
/// Err when the shell could not start (said on stderr).
fn student_shell(
    program: &str,
    prompt: &str,
    tasks: &[String],
    wait: &dyn Fn(Duration),
    grade_now: &mut dyn FnMut() -> Option<Grade>,
) -> Result<Option<Grade>, ()> {
    let channel = match Channel::new(prompt) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netlab: cannot make the exercise's check channel: {e}");
            return Err(());
        }
    };
    println!("Tasks:");
    for t in tasks {
        println!("{t}");
    }
    println!();
    println!("You are root in the exercise's sandbox: its host namespace (the tutorial's machine).");
    println!("Use the tutorial's commands (ip, iptables, nft, sysctl ...); `ip netns` lists the nodes,");
    println!("`ip netns exec NODE COMMAND` runs a command in one. Nothing here reaches your machine.");
    println!("  check   grade your work now: every task, the next hint for each one not done yet");
    println!("  exit    leave; everything the exercise made is removed");
    let _ = std::io::stdout().flush();
    let mut command = Command::new(program);
    // SAFETY: only setrlimit(2) between fork and exec.
    unsafe { command.pre_exec(netlab_runtime::backend::kernel::sandbox::limit_processes) };
    let mut child = match command.arg("--rcfile").arg(channel.path("rc")).arg("-i").spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netlab: cannot start the shell {program}: {e} (--shell PROGRAM names another)");
            return Err(());
        }
    };
    let mut last = None;
    loop {
        if netlab_runtime::interrupt::signal().is_some() {
            // SAFETY: kill(2) on our own child, not reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
            let _ = child.wait();
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if !channel.asked() {
            wait(Duration::from_millis(20));
            continue;
        }
        // The output goes to a file first, then to `check`: a reader gone early
        // (`check | head`, Ctrl-C) must not leave it half-written in our stdout's buffer.
        let Ok(mut output) = tempfile::tempfile() else { continue };
        let graded = with_output_to(&output, &mut *grade_now);
        if let Some(mut answer) = channel.answer() {
            use std::io::Seek;
            let _ = output.rewind();
            let _ = std::io::copy(&mut output, &mut answer);
        }
        let passed = graded.as_ref().is_some_and(|g| g.tasks.iter().all(|t| t.passed));
        let _ = std::fs::write(channel.path("passed"), if passed { "yes\n" } else { "no\n" });
        match graded {
            Some(g) => last = Some(g),
            // A stop signal ended the grading: the exercise ends.
            None => {
                // SAFETY: as above.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
                let _ = child.wait();
                break;
            }
        }
    }
    Ok(last)
}

/// Runs `f` with this process's stdout and stderr going to `file`, then puts them back.
fn with_output_to<T>(file: &std::fs::File, f: &mut dyn FnMut() -> T) -> T {
    let _ = std::io::stdout().flush();
    // SAFETY: dup/dup2 of our own standard descriptors; each saved one is restored
    // and closed below. Nothing else writes to them meanwhile (one thread prints).
    let saved = unsafe { [libc::dup(1), libc::dup(2)] };
    unsafe {
        libc::dup2(file.as_raw_fd(), 1);
        libc::dup2(file.as_raw_fd(), 2);
    }
    let out = f();
    let _ = std::io::stdout().flush();
    unsafe {
        for (fd, copy) in [1, 2].into_iter().zip(saved) {
            if copy >= 0 {
                libc::dup2(copy, fd);
                libc::close(copy);
            }
        }
    }
    out
}
