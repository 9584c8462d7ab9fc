//! What the bindings talk to: the backend (kernel or model) behind one seam, the
//! journal of what ran (for `--explain`, `export`, `plan`), and the node handles
//! scripts hold.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use netlab_runtime::backend::kernel::HOST;
use netlab_runtime::backend::{Applied, Backend};
use netlab_runtime::model::{Entry, Op, Probe};
use netlab_runtime::render;
use netlab_runtime::{Error, NodeName};
use rhai::{Dynamic, EvalAltResult, NativeCallContext};

use super::values::{to_rhai, RhaiResult};
use crate::report::Reporter;

/// A node as scripts hold it (type name "Node"): its name, and which incarnation
/// of that name it is (a node deleted with del_netns() and made again is another).
#[derive(Clone, Debug)]
pub struct NodeRef {
    pub name: NodeName,
    generation: u64,
}

impl PartialEq for NodeRef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.generation == other.generation
    }
}

/// How a run goes, beyond the backend.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The wall-clock limit and the operation budget (`--max-time`, `--max-operations`).
    pub limits: super::limits::Limits,
    pub explain: Explain,
    /// Print nothing: the run is only for its journal or its model.
    pub silent: bool,
    /// Stop after this step (its number or its title).
    pub until: Option<String>,
    /// Show per step what changed in the kernel (`--diff`).
    pub diff: bool,
    /// Human output to stderr (stdout carries a `--format` report).
    pub to_stderr: bool,
    /// Keep what is printed, for a report's output (`--junit`, `--format`).
    pub transcript: bool,
    /// Where the run's events are appended as they happen (`--events`).
    pub events: Option<Rc<std::fs::File>>,
    /// An exercise's solution, run after its starting state and before its tasks.
    pub solution: Option<super::exercise::Solution>,
    /// `netlab exercise`: the student's shell instead of one grading.
    pub shell: Option<super::exercise::Shell>,
}

/// How much of what ran a run prints under each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Explain {
    #[default]
    Quiet,
    /// The equivalent commands of each op and probe (`--explain`, `plan`).
    Commands,
}

pub struct Session {
    backend: Rc<dyn Backend>,
    reporter: Rc<RefCell<Reporter>>,
    journal: RefCell<Vec<Entry>>,
    explain: Explain,
    until: Option<String>,
    diff: bool,
    generations: RefCell<HashMap<NodeName, u64>>,
    next_generation: Cell<u64>,
    host: NodeName,
    /// The line of the last program run (exec_in) in the current step.
    program_in_step: Cell<Option<usize>>,
    /// Checks made outside any step (a lint of `netlab check`).
    pub checks_outside_steps: RefCell<Vec<usize>>,
    /// When the lab's wall-clock limit (--max-time) runs out.
    ends_at: Instant,
    max_time: Duration,
}

fn line_of(ctx: &NativeCallContext) -> usize {
    ctx.call_position().line().unwrap_or(0)
}

impl Session {
    pub fn new(backend: Rc<dyn Backend>, reporter: Rc<RefCell<Reporter>>, options: &RunOptions) -> Session {
        let host = NodeName::new(HOST).expect("a valid name");
        let generations = backend.node_names().into_iter().map(|n| (n, 0)).collect();
        Session {
            backend,
            reporter,
            journal: RefCell::default(),
            explain: options.explain,
            until: options.until.clone(),
            diff: options.diff,
            generations: RefCell::new(generations),
            next_generation: Cell::new(1),
            host,
            checks_outside_steps: RefCell::default(),
            program_in_step: Cell::new(None),
            ends_at: Instant::now() + options.limits.max_time,
            max_time: options.limits.max_time,
        }
    }

    /// When the lab's wall-clock limit runs out.
    pub fn ends_at(&self) -> Instant {
        self.ends_at
    }

    /// A negative probe's window of `seconds` (scaled): watched whole or not at all,
    /// since a window cut short could pass a check that would fail.
    pub fn window(&self, ctx: &NativeCallContext, seconds: f64) -> RhaiResult<Duration> {
        let window = self.backend.deadline(seconds);
        if self.backend.evaluates() && Instant::now() + window > self.ends_at {
            return Err(super::limits::Stopped::MaxTime(self.max_time).at(ctx.call_position()));
        }
        Ok(window)
    }

    /// A native call's deadline of `seconds` (scaled for slow machines), cut to what
    /// is left of the lab's wall-clock limit: a probe or program cannot outlast it.
    pub fn deadline(&self, seconds: f64) -> Duration {
        let left = self.ends_at.saturating_duration_since(Instant::now());
        self.backend.deadline(seconds).min(left)
    }

    /// The step `--until` stops after.
    pub fn until(&self) -> Option<&str> {
        self.until.as_deref()
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Whether checks run for real (the kernel) or are only recorded (the model).
    pub fn evaluates(&self) -> bool {
        self.backend.evaluates()
    }

    pub fn journal(&self) -> Vec<Entry> {
        self.journal.borrow().clone()
    }

    /// How many entries the journal holds: where what runs next begins.
    pub fn journal_len(&self) -> usize {
        self.journal.borrow().len()
    }

    /// The commands the ops since journal entry `from` stand for (`ip ...`,
    /// `iptables ...`, `sysctl -w ...`), as --explain shows them.
    pub fn commands_since(&self, from: usize) -> Vec<String> {
        let journal = self.journal.borrow();
        journal[from.min(journal.len())..]
            .iter()
            .filter_map(|e| match e {
                Entry::Op { op, .. } => Some(render::ip::op_commands(op, self.host.as_str())),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// With --explain, shows the commands `render` makes (rendered only then).
    fn explain_lines(&self, render: impl FnOnce() -> Vec<String>) {
        if self.explain == Explain::Commands {
            self.reporter.borrow().explain(&render());
        }
    }

    /// Applies an op through the backend; on success it joins the journal (and,
    /// with --explain, is shown as the commands it stands for).
    pub fn apply(&self, ctx: &NativeCallContext, op: Op) -> RhaiResult<Applied> {
        let pos = ctx.call_position();
        let origin = (pos.line().unwrap_or(0) as u16, pos.position().unwrap_or(0) as u16);
        let applied = to_rhai(ctx, self.backend.apply_at(&op, origin).map_err(|e| self.unseen_by_the_model(e)))?;
        match &op {
            Op::AddNode { node } => {
                let g = self.next_generation.get();
                self.next_generation.set(g + 1);
                self.generations.borrow_mut().insert(node.clone(), g);
            }
            Op::DelNode { node } => {
                self.generations.borrow_mut().remove(node);
            }
            _ => {}
        }
        self.explain_lines(|| render::ip::op_commands(&op, self.host.as_str()));
        self.journal.borrow_mut().push(Entry::Op { op, line: line_of(ctx) });
        Ok(applied)
    }

    /// Runs a program in a node (`op` is its Op::Exec): the kernel runs it, the
    /// model only records it. Joins the journal like any op.
    pub fn exec(
        &self,
        ctx: &NativeCallContext,
        op: Op,
        command: &netlab_runtime::backend::kernel::exec::CommandLine,
        timeout: std::time::Duration,
    ) -> RhaiResult<netlab_runtime::backend::kernel::exec::ExecOutput> {
        let out = to_rhai(ctx, self.backend.exec(op.node(), command, timeout))?;
        self.program_in_step.set(Some(line_of(ctx)));
        self.explain_lines(|| render::ip::op_commands(&op, self.host.as_str()));
        self.journal.borrow_mut().push(Entry::Op { op, line: line_of(ctx) });
        Ok(out)
    }

    /// With the model, a link or node a program made may be one the model could not
    /// follow: say so, with the program's line.
    fn unseen_by_the_model(&self, e: Error) -> Error {
        if self.evaluates() {
            return e;
        }
        let program = self.journal.borrow().iter().rev().find_map(|entry| match entry {
            Entry::Op { op: Op::Exec { command, .. }, line } => Some((command.clone(), *line)),
            _ => None,
        });
        let Some((command, line)) = program else { return e };
        let note = format!(
            "if a program made it (e.g. `{command}` at line {line}): the plan follows the ip, brctl and \
             sysctl commands of a program's command line, not other programs or shell variables"
        );
        match e {
            Error::NoSuchLink { node, link, help } => {
                Error::NoSuchLink { node, link, help: Some(help.map(|h| format!("{h}; {note}")).unwrap_or(note)) }
            }
            Error::NoSuchNode { name, help } => {
                Error::NoSuchNode { name, help: Some(help.map(|h| format!("{h}; {note}")).unwrap_or(note)) }
            }
            other => other,
        }
    }

    /// A probe is about to be made (or, with the model, planned).
    pub fn probe(&self, ctx: &NativeCallContext, probe: Probe) {
        if probe.is_check() && self.reporter.borrow().current_step().is_none() {
            self.checks_outside_steps.borrow_mut().push(line_of(ctx));
        }
        self.explain_lines(|| render::ip::probe_commands(&probe, self.host.as_str()));
        self.journal.borrow_mut().push(Entry::Probe { probe, line: line_of(ctx) });
    }

    /// A check on a value the lab computed (expect, expect_eq).
    pub fn claim(&self, ctx: &NativeCallContext, title: &str) {
        if self.reporter.borrow().current_step().is_none() {
            self.checks_outside_steps.borrow_mut().push(line_of(ctx));
        }
        self.journal.borrow_mut().push(Entry::Claim { title: title.to_string(), line: line_of(ctx) });
    }

    /// Applies what the backend held back (at a step's end, and the lab's).
    pub fn flush(&self, pos: rhai::Position) -> RhaiResult<()> {
        self.backend.flush().map_err(|e| super::values::held_or(e, pos))
    }

    /// The line of the last program the current step ran, if any.
    pub fn program_ran_in_step(&self) -> Option<usize> {
        self.program_in_step.get()
    }

    pub fn begin_step(&self, title: &str) {
        self.program_in_step.set(None);
        self.journal.borrow_mut().push(Entry::Step { title: title.to_string() });
    }

    /// With `--diff`, the kernel state before a step, to compare with after it.
    pub fn state_before_step(&self) -> Option<netlab_runtime::snapshot::Snapshot> {
        if !self.diff || !self.evaluates() {
            return None;
        }
        netlab_runtime::snapshot::take(&[]).ok()
    }

    /// With `--diff`, what the step changed.
    pub fn show_changes(&self, before: Option<netlab_runtime::snapshot::Snapshot>) {
        let Some(before) = before else { return };
        match netlab_runtime::snapshot::take(&[]) {
            Ok(after) => {
                // Said as a change: the first snapshot is before the step.
                let changes: Vec<String> = netlab_runtime::snapshot::diff(&before, &after)
                    .into_iter()
                    .map(|c| {
                        c.replace(" only in the second", " added")
                            .replace(" only in the first", " removed")
                            .replace(" vs ", " -> ")
                    })
                    .collect();
                self.reporter.borrow().changes(&changes);
            }
            Err(e) => self.reporter.borrow().changes(&[format!("(cannot read the kernel state: {e})")]),
        }
    }

    /// The sysctls the lab set, per node: what a state snapshot reads back.
    pub fn sysctls_set(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = Vec::new();
        for entry in self.journal.borrow().iter() {
            if let Entry::Op { op: Op::SetSysctl { node, key, .. }, .. } = entry {
                let pair = (node.to_string(), key.clone());
                if !keys.contains(&pair) {
                    keys.push(pair);
                }
            }
        }
        keys
    }

    /// The handle of a node found by its name: one a program made (`ip netns add`,
    /// adopted by the kernel backend) gets its handle now.
    pub fn found_node_ref(&self, name: NodeName) -> NodeRef {
        let mut generations = self.generations.borrow_mut();
        let generation = *generations.entry(name.clone()).or_insert_with(|| {
            let g = self.next_generation.get();
            self.next_generation.set(g + 1);
            g
        });
        NodeRef { name, generation }
    }

    /// The handle of a live node.
    pub fn node_ref(&self, name: NodeName) -> NodeRef {
        let generation = self.generations.borrow().get(&name).copied().unwrap_or(0);
        NodeRef { name, generation }
    }

    /// A node argument: a Node handle (of a node still there) or a node's name.
    pub fn node(&self, ctx: &NativeCallContext, value: &Dynamic) -> RhaiResult<NodeName> {
        if let Some(node) = value.clone().try_cast::<NodeRef>() {
            if self.generations.borrow().get(&node.name) == Some(&node.generation) {
                return Ok(node.name);
            }
            // A node deleted with del_netns() is gone, as after `ip netns delete`.
            let name = node.name.to_string();
            return to_rhai(
                ctx,
                Err(Error::NoSuchNode {
                    help: Some(format!("{name} was deleted (del_netns); netns(\"{name}\") makes a new one")),
                    name,
                }),
            );
        }
        if let Ok(name) = value.clone().into_immutable_string() {
            return to_rhai(ctx, self.backend.require_node(&name));
        }
        Err(Box::new(EvalAltResult::ErrorMismatchDataType(
            "Node (or a node's name)".into(),
            value.type_name().into(),
            ctx.call_position(),
        )))
    }
}
