//! `netlab sh SCRIPT`: runs a shell script (e.g. what `netlab export` writes) with
//! bash inside a fresh sandbox, the one `netlab run` makes, and can write a snapshot
//! of the kernel state it left (runtime/src/snapshot.rs) to compare with a lab's.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use netlab_runtime::{snapshot, Lab, LabOptions};

#[derive(clap::Args, Clone)]
pub struct ShArgs {
    /// The script, run with bash in the sandbox's own namespace (the lab's host).
    pub script: PathBuf,
    /// After the script, write a snapshot of the sandbox's kernel state (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Include this sysctl of this node in the snapshot, e.g. host:net.ipv4.ip_forward (repeatable).
    #[arg(long = "sysctl", value_name = "NODE:KEY")]
    pub sysctl: Vec<String>,
    /// After the script, open a shell inside the sandbox to look around.
    #[arg(long)]
    pub keep: bool,
}

/// Exits with the script's exit code (128 + N when signal N ended it); 2 when the
/// script or an argument is wrong; 3 when the sandbox cannot be made, or the
/// snapshot cannot be taken after a script that succeeded.
pub fn sh(args: &ShArgs) -> i32 {
    if !args.script.is_file() {
        eprintln!("netlab: no script {}", args.script.display());
        return 2;
    }
    let mut sysctls = Vec::new();
    for s in &args.sysctl {
        match s.split_once(':') {
            Some((node, key)) if !node.is_empty() && netlab_runtime::backend::kernel::sysctl::path_for(key).is_ok() => {
                sysctls.push((node.to_string(), key.to_string()))
            }
            _ => {
                eprintln!(
                    "netlab: --sysctl takes NODE:KEY with a net.* key, e.g. host:net.ipv4.ip_forward (got {s:?})"
                );
                return 2;
            }
        }
    }
    // Both resolved against the caller's cwd now; the state file is opened before
    // the sandbox exists, so any path works (inside, /run and /etc are the sandbox's
    // own) and the file belongs to the caller.
    let script = match std::path::absolute(&args.script) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("netlab: {}: {e}", args.script.display());
            return 2;
        }
    };
    let mut state = match &args.state {
        Some(path) => match File::create(path) {
            Ok(f) => Some((f, path.clone())),
            Err(e) => {
                eprintln!("netlab: cannot write {}: {e}", path.display());
                return 2;
            }
        },
        None => None,
    };
    // Read now: inside, the sandbox's root may not be allowed into the caller's folders.
    let text = match std::fs::read(&script) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("netlab: cannot read {}: {e}", script.display());
            return 2;
        }
    };
    // The script's folder is visible read-only, for files it reads beside itself.
    let binds = netlab_runtime::backend::kernel::sandbox::Binds {
        read_only: script.parent().map(|d| d.to_path_buf()).into_iter().collect(),
        read_write: Vec::new(),
    };
    // Before any thread exists: from here on we are inside the sandbox.
    if let Err(e) = netlab_runtime::enter_sandbox(&binds) {
        eprintln!("{:?}", miette::Report::new(e));
        return 3;
    }
    // The same host as a lab gets (loopback up, netlab's defaults), so a script's
    // snapshot compares with a lab's.
    let lab = match Lab::new(LabOptions::default()) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return 3;
        }
    };
    // The sandbox's own copy of the script, run under its own name.
    let copy = std::path::Path::new("/run/netlab/sh").join(script.file_name().unwrap_or_default());
    if let Err(e) = std::fs::create_dir_all("/run/netlab/sh").and_then(|_| std::fs::write(&copy, &text)) {
        eprintln!("netlab: cannot copy the script into the sandbox: {e}");
        lab.teardown();
        return 3;
    }
    let mut bash = tokio::process::Command::new("bash");
    bash.arg(&copy);
    let mut code = match super::run_program(&lab, bash) {
        Some(Ok(status)) => {
            status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0))
        }
        Some(Err(e)) => {
            eprintln!("netlab: cannot start bash: {e}");
            3
        }
        None => {
            eprintln!("netlab: interrupted; the script was stopped");
            lab.teardown();
            return netlab_runtime::interrupt::exit_code();
        }
    };
    if let Some((file, path)) = state.as_mut() {
        let written = snapshot::take(&sysctls).map_err(|e| format!("{:?}", miette::Report::new(e))).and_then(|s| {
            file.write_all(s.to_json().as_bytes()).map_err(|e| format!("netlab: cannot write {}: {e}", path.display()))
        });
        if let Err(e) = written {
            eprintln!("{e}");
            if code == 0 {
                code = 3;
            }
        }
    }
    if args.keep && netlab_runtime::interrupt::signal().is_none() {
        keep_shell(&lab);
    }
    lab.teardown();
    code
}

/// `--keep`: a shell in the sandbox; the script's namespaces are under /run/netns.
fn keep_shell(lab: &Lab) {
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    eprintln!("netlab: the sandbox is kept; you are in its host namespace. `ip netns` lists its nodes. Exit the shell to tear it down.");
    let mut command = tokio::process::Command::new(&shell);
    command.env("PS1", "(netlab) # ");
    if let Some(Err(e)) = super::run_program(lab, command) {
        eprintln!("netlab: cannot start {shell}: {e}");
    }
}
