//! `netlab run`: the lab against the kernel, in a sandbox.

use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use netlab_runtime::{Lab, LabOptions};
use rhai::Dynamic;

use super::RunArgs;
use crate::engine::diagnose::{LabDiagnostic, Source, Verdict};
use crate::engine::session::{Explain, RunOptions};
use crate::engine::{self, parse_setting};

pub(super) fn report(d: LabDiagnostic) {
    eprintln!("{:?}", miette::Report::new(d));
}

pub(super) fn read_lab(path: &Path) -> Result<String, i32> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("netlab: cannot read {}: {e}", path.display());
        2
    })
}

pub(super) fn parse_settings(set: &[String]) -> Result<Vec<(String, Dynamic)>, i32> {
    set.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Ok((k.to_string(), parse_setting(v)))
            }
            _ => {
                eprintln!("netlab: --set takes NAME=VALUE with a plain name, e.g. --set n=100 (got {s:?})");
                Err(2)
            }
        })
        .collect()
}

pub fn run(args: &RunArgs) -> i32 {
    let started = Instant::now();
    let settings = match parse_settings(&args.set) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let text = match read_lab(&args.lab) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let name = args.lab.display().to_string();
    let src = Source { path: &name, text: &text };
    let ast = match engine::compile(&src) {
        Ok(ast) => ast,
        Err(d) => {
            report(*d);
            return 2;
        }
    };
    // Relative to where netlab was started, whatever the lab does to its cwd.
    let state = args.state.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    // A state file that cannot be written is the caller's mistake: say so before the run.
    if let Some(path) = &state {
        if let Err(e) = std::fs::File::create(path) {
            eprintln!("netlab: --state {}: {e}", path.display());
            return 2;
        }
    }
    // Before any thread exists: from here on we are inside the sandbox.
    if let Err(e) = netlab_runtime::enter_sandbox() {
        eprintln!("{:?}", miette::Report::new(e));
        return 3;
    }
    let lab = match Lab::new(LabOptions { slow_factor: args.slow_factor }) {
        Ok(lab) => Rc::new(lab),
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return 3;
        }
    };
    let options = RunOptions {
        limits: args.limits(),
        explain: if args.explain { Explain::Commands } else { Explain::Quiet },
        silent: false,
        until: args.until.clone(),
        diff: args.diff,
    };
    let outcome = engine::run(lab.clone(), &options, &src, &ast, &settings);
    let rep = outcome.reporter.borrow();
    let code = match outcome.diagnostic {
        None => {
            rep.summary(&name, "PASS", None);
            0
        }
        Some(d) => {
            let verdict = d.verdict;
            let line = d.span.map(|s| text[..s.offset()].matches('\n').count() + 1).unwrap_or(0);
            let why = match verdict {
                Verdict::CheckFailed => "check failed",
                Verdict::ScriptError => "script error",
                Verdict::Environment => "environment problem",
                Verdict::Interrupted => "interrupted",
            };
            let step = rep.stopped_in().map(|s| format!(" in step {s}")).unwrap_or_default();
            report(*d);
            let at = if line > 0 { format!(" at line {line}") } else { String::new() };
            rep.summary(&name, "FAIL", Some(&format!("{why}{step}{at}")));
            verdict.exit_code()
        }
    };
    if let (Some(until), None) = (&args.until, outcome.stopped_after.as_ref()) {
        if code == 0 {
            eprintln!("netlab: --until {until:?}: no step is numbered or titled so; the lab ran to its end");
        }
    }
    if let Some(path) = &state {
        if let Err(e) = netlab_runtime::snapshot::write_state(path, &outcome.session.sysctls_set()) {
            eprintln!("netlab: cannot write the state to {}: {e}", path.display());
        }
    }
    if args.keep {
        keep_shell(&lab);
    }
    let teardown_started = Instant::now();
    lab.teardown();
    if let Some(path) = std::env::var_os("NETLAB_RESULTS") {
        let line = rep.results_line(&[
            ("lab", name.replace(char::is_whitespace, "_")),
            ("ready_wait_s", format!("{:.4}", lab.ready_wait().as_secs_f64())),
            ("teardown_s", format!("{:.4}", teardown_started.elapsed().as_secs_f64())),
            ("total_s", format!("{:.4}", started.elapsed().as_secs_f64())),
            ("exit", code.to_string()),
        ]);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("netlab: cannot append to NETLAB_RESULTS ({}): {e}", std::path::Path::new(&path).display());
        }
    }
    code
}

/// `--keep`: a shell in the sandbox; the lab's namespaces are under /run/netns.
fn keep_shell(lab: &Lab) {
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    eprintln!("netlab: the lab is kept; you are in its host namespace. `ip netns` lists its nodes. Exit the shell to tear it down.");
    let status = lab.block_on(async { tokio::process::Command::new(&shell).env("PS1", "(netlab) # ").status().await });
    if let Err(e) = status {
        eprintln!("netlab: cannot start {shell}: {e}");
    }
}
