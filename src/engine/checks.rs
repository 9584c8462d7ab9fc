//! Steps and checks: step(), expect_ping(), expect_no_ping(), expect(), expect_eq(),
//! and exec_in(). A failed check aborts the lab with exit code 1.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use netlab_runtime::backend::kernel::addr::parse_ip;
use netlab_runtime::backend::kernel::exec::CommandLine;
use netlab_runtime::model::{Expect, Feature, LinkKind, Op, Probe};
use netlab_runtime::outcome::{describe, Wanted};
use netlab_runtime::ping::{PingMode, PingOpts, PingReport};
use netlab_runtime::{Error, NodeName};
use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};

use super::session::Session;
use super::values::{failure, line, opt_seconds, reject_unknown, to_rhai, Failure, RhaiResult};
use crate::report::{fmt_duration, Reporter, StepResult};

/// The most echo requests ping_count() sends per node (`tries`).
const MAX_TRIES: i64 = 10_000;

fn seconds(ctx: &NativeCallContext, opts: &Map, key: &str, default: f64) -> RhaiResult<f64> {
    opt_seconds(ctx, opts, key, default)
}

fn check_options(ctx: &NativeCallContext, opts: &Map, allowed: &[&str]) -> RhaiResult<()> {
    reject_unknown(ctx, opts, allowed)
}

fn fail_check(
    ctx: &NativeCallContext,
    rep: &RefCell<Reporter>,
    title: String,
    detail: String,
    hint: Option<String>,
) -> Box<EvalAltResult> {
    super::values::check_failure(ctx, rep, title, detail, hint)
}

fn seen(report: &PingReport) -> String {
    if report.reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", describe(&report.reasons))
    }
}

/// Why a ping likely failed, from the node's real state.
/// A link-local ping over a link whose IPv6 is off (netlab's default for new links).
fn zone_hint(ss: &Session, node: &NodeName, opts: &PingOpts) -> Option<String> {
    let zone = opts.zone.as_ref()?;
    let links = ss.backend().links(node, None).ok()?;
    let link = links.iter().find(|l| l.name == zone.as_str())?;
    (!link.ipv6).then(|| {
        format!(
            "IPv6 is off on {zone} in {node} (netlab keeps it off on new links): ipv6({node}, \"{zone}\") turns it on"
        )
    })
}

fn ping_hint(ss: &Session, node: &NodeName, report: &PingReport) -> Option<String> {
    if report.neigh_table_full {
        return Some(format!(
            "the machine's neighbour table was full (net.ipv4.neigh.default.gc_thresh3 = {}, shared by every \
             namespace on the machine): is another large lab running? netlab never changes that limit",
            netlab_runtime::backend::kernel::neigh::capacity()
        ));
    }
    if report.reasons.iter().any(|r| r.is("unreachable")) {
        return Some(format!(
            "{node} has no route to that address: give a link an address in its subnet, or add a route"
        ));
    }
    let links = ss.backend().links(node, None).ok()?;
    let down: Vec<String> = links
        .iter()
        .filter(|l| l.kind != LinkKind::Loopback && !l.admin_up)
        .map(|l| format!("{} is DOWN", l.name))
        .collect();
    if !down.is_empty() {
        return Some(format!("in {node}: {}", down.join(", ")));
    }
    let no_carrier: Vec<String> = links
        .iter()
        .filter(|l| l.kind != LinkKind::Loopback && l.admin_up && !l.is_oper_up())
        .map(|l| format!("{} has no carrier (is its peer up?)", l.name))
        .collect();
    if !no_carrier.is_empty() {
        return Some(format!("in {node}: {}", no_carrier.join(", ")));
    }
    // An IPv6 address whose duplicate address detection failed is never used.
    let addrs = ss.backend().addresses(node).ok()?;
    let failed: Vec<String> = addrs
        .iter()
        .filter(|a| a.flags.dadfailed)
        .map(|a| {
            let dev = links.iter().find(|l| l.index == a.link_index).map_or("?", |l| l.name.as_str());
            format!(
                "{} on {dev} failed duplicate address detection (dadfailed): another node on the link has it",
                a.cidr
            )
        })
        .collect();
    if !failed.is_empty() {
        return Some(format!("in {node}: {}", failed.join(", ")));
    }
    None
}

/// How long expect_no_ping watches at most by default: a full neighbour resolution
/// in a lab node (6 probes 10 ms apart, see Lab::tune_neighbours, then FAILED) and a
/// round trip between namespaces (microseconds), with room to spare. It ends sooner
/// when nothing can still come back (Lab::ping). Readiness (links activated, bridge
/// ports forwarding) is waited for before the window opens.
const NEGATIVE_PING_WINDOW: f64 = 0.08;

/// The `error` option of a negative check: a reason keyword or text to find.
pub(super) fn wanted_reason(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<Option<Wanted>> {
    match super::values::opt_str(ctx, opts, "error")? {
        None => Ok(None),
        Some(text) => Wanted::parse(&text).map(Some).map_err(|e| super::values::runtime_error(ctx, e)),
    }
}

pub fn register(engine: &mut Engine, s: &Rc<Session>, rep: &Rc<RefCell<Reporter>>) {
    let (ss, r) = (s.clone(), rep.clone());
    engine.register_fn("step", move |ctx: NativeCallContext, title: &str, body: FnPtr| -> RhaiResult<()> {
        ss.begin_step(title);
        r.borrow_mut().begin_step(title, line(&ctx));
        let before = ss.state_before_step();
        let out: RhaiResult<Dynamic> = body.call_within_context(&ctx, ());
        // What the step did is in the kernel before the step ends.
        let out = out.and_then(|v| ss.flush(ctx.call_position()).map(|_| v));
        ss.show_changes(before);
        // The model runs no program: a step that goes wrong on what a program
        // printed is planned only up to there, and the plan goes on.
        let out = match (out, ss.program_ran_in_step()) {
            (Err(e), Some(line)) if !ss.evaluates() && super::diagnose::payload(&e).is_none() => {
                r.borrow().print(&format!(
                    "(planned up to here: this step reads the output of the program run at line {line}, \
                     which only a real run has: {e})"
                ));
                Ok(Dynamic::UNIT)
            }
            (out, _) => out,
        };
        let result = match &out {
            // Whatever ended a step after a stop signal came is the signal.
            Err(_) if netlab_runtime::interrupt::signal().is_some() => StepResult::Interrupted,
            Ok(_) => StepResult::Passed,
            Err(e) if is_check_failure(e) => StepResult::Failed,
            Err(e) if matches!(super::diagnose::payload(e), Some(Failure::Skip(_))) => StepResult::Skipped,
            Err(_) => StepResult::Error,
        };
        r.borrow_mut().end_step(result);
        out.map(|_| ())?;
        // --until STEP: the lab stops once this step is done.
        let last = r.borrow().last_step();
        match (ss.until(), last) {
            (Some(until), Some((number, title))) if until == number.to_string() || until == title => {
                Err(failure(Failure::StopAfter(format!("{number}. {title}")), ctx.call_position()))
            }
            _ => Ok(()),
        }
    });

    // skip(reason): the rest of the lab cannot run here; it ends, reported as skipped
    // (exit 0, never a pass), with the steps that ran before it.
    let r = rep.clone();
    engine.register_fn("skip", move |ctx: NativeCallContext, reason: &str| -> RhaiResult<()> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(super::values::runtime_error(
                &ctx,
                "skip() needs a reason, e.g. skip(\"needs two uplinks\")".into(),
            ));
        }
        r.borrow_mut().skipped(reason, line(&ctx));
        Err(failure(Failure::Skip(reason.to_string()), ctx.call_position()))
    });

    // has("vlan"): whether the kernel has a feature (probed for real, once).
    let ss = s.clone();
    engine.register_fn("has", move |ctx: NativeCallContext, name: &str| -> RhaiResult<bool> {
        let feature = to_rhai(&ctx, name.parse::<Feature>())?;
        to_rhai(&ctx, ss.backend().has_feature(feature))
    });
    // requires("vlan", ...): skip the rest of the lab unless the kernel has them all.
    let requires = {
        let (ss, r) = (s.clone(), rep.clone());
        move |ctx: &NativeCallContext, names: Vec<String>| -> RhaiResult<()> {
            let mut missing = Vec::new();
            for name in &names {
                let feature = to_rhai(ctx, name.parse::<Feature>())?;
                if !to_rhai(ctx, ss.backend().has_feature(feature))? {
                    missing.push(feature.absent_reason());
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            let reason = missing.join("; ");
            r.borrow_mut().skipped(&reason, line(ctx));
            Err(failure(Failure::Skip(reason), ctx.call_position()))
        }
    };
    let f = requires.clone();
    engine.register_fn("requires", move |ctx: NativeCallContext, a: &str| f(&ctx, vec![a.into()]));
    let f = requires.clone();
    engine.register_fn("requires", move |ctx: NativeCallContext, a: &str, b: &str| f(&ctx, vec![a.into(), b.into()]));
    let f = requires.clone();
    engine.register_fn("requires", move |ctx: NativeCallContext, a: &str, b: &str, c: &str| {
        f(&ctx, vec![a.into(), b.into(), c.into()])
    });
    let f = requires;
    engine.register_fn("requires", move |ctx: NativeCallContext, names: rhai::Array| -> RhaiResult<()> {
        let names = names
            .into_iter()
            .map(|v| {
                v.into_string().map_err(|t| {
                    super::values::runtime_error(&ctx, format!("requires() takes feature names, got a {t}"))
                })
            })
            .collect::<RhaiResult<Vec<String>>>()?;
        f(&ctx, names)
    });

    for with_opts in [false, true] {
        let (ss, r) = (s.clone(), rep.clone());
        let positive = move |ctx: NativeCallContext, node: Dynamic, dst: &str, opts: Map| -> RhaiResult<()> {
            check_options(&ctx, &opts, &["timeout", "size", "df", "ttl", "source"])?;
            let node = ss.node(&ctx, &node)?;
            let (ip, zone) = ping_dst(&ctx, dst)?;
            let timeout = ss.deadline(seconds(&ctx, &opts, "timeout", 3.0)?);
            let ping_opts = PingOpts { zone, ..ping_opts(&ctx, &opts, ip)? };
            let title = format!("{node} pings {dst}{}", netlab_runtime::render::ip::ping_args(&ping_opts));
            ss.probe(
                &ctx,
                Probe::Ping { node: node.clone(), dst: ip, expect: Some(Expect::Answer), opts: ping_opts.clone() },
            );
            if !ss.evaluates() {
                r.borrow_mut().check_planned(&title);
                return Ok(());
            }
            let report = to_rhai(&ctx, ss.backend().ping(&node, ip, PingMode::UntilReply { timeout }, &ping_opts))?;
            match report.first_reply {
                Some(t) => {
                    r.borrow_mut().check_passed(&format!("{title}: reply after {}", fmt_duration(t)), line(&ctx));
                    Ok(())
                }
                None => {
                    let detail = format!(
                        "no reply to {} requests in {}{}",
                        report.sent,
                        fmt_duration(report.elapsed),
                        seen(&report)
                    );
                    let hint = zone_hint(&ss, &node, &ping_opts).or_else(|| ping_hint(&ss, &node, &report));
                    Err(fail_check(&ctx, &r, title, detail, hint))
                }
            }
        };
        if with_opts {
            engine.register_fn("expect_ping", positive);
        } else {
            engine.register_fn("expect_ping", move |ctx: NativeCallContext, node: Dynamic, dst: &str| {
                positive(ctx, node, dst, Map::new())
            });
        }

        let (ss, r) = (s.clone(), rep.clone());
        let negative = move |ctx: NativeCallContext, node: Dynamic, dst: &str, opts: Map| -> RhaiResult<()> {
            check_options(&ctx, &opts, &["window", "error", "size", "df", "ttl", "source"])?;
            let node = ss.node(&ctx, &node)?;
            let (ip, zone) = ping_dst(&ctx, dst)?;
            let window = ss.window(&ctx, seconds(&ctx, &opts, "window", NEGATIVE_PING_WINDOW)?)?;
            // The reason the tutorial shows, e.g. "unreachable" (Network is unreachable).
            let wanted = wanted_reason(&ctx, &opts)?;
            let ping_opts = PingOpts { zone, ..ping_opts(&ctx, &opts, ip)? };
            let title = format!("{node} cannot ping {dst}{}", netlab_runtime::render::ip::ping_args(&ping_opts));
            ss.probe(
                &ctx,
                Probe::Ping { node: node.clone(), dst: ip, expect: Some(Expect::NoAnswer), opts: ping_opts.clone() },
            );
            if !ss.evaluates() {
                r.borrow_mut().check_planned(&title);
                return Ok(());
            }
            let report = to_rhai(&ctx, ss.backend().ping(&node, ip, PingMode::Watch { window }, &ping_opts))?;
            if let Some(w) = wanted.as_ref().filter(|w| report.received == 0 && !w.satisfied_by(&report.reasons)) {
                let detail = format!("no reply, but not for the reason {w}: {}", describe(&report.reasons));
                return Err(fail_check(&ctx, &r, title, detail, None));
            }
            if report.received == 0 {
                let detail = format!(
                    "no reply to {} requests in {}{}",
                    report.sent,
                    fmt_duration(report.elapsed),
                    seen(&report)
                );
                r.borrow_mut().check_passed(&format!("{title}: {detail}"), line(&ctx));
                Ok(())
            } else {
                let detail = format!("{} of {} requests were answered", report.received, report.sent);
                let hint = Some("something already connects them; check the steps before this one".to_string());
                Err(fail_check(&ctx, &r, title, detail, hint))
            }
        };
        if with_opts {
            engine.register_fn("expect_no_ping", negative);
        } else {
            engine.register_fn("expect_no_ping", move |ctx: NativeCallContext, node: Dynamic, dst: &str| {
                negative(ctx, node, dst, Map::new())
            });
        }
    }

    // wait_until(|| cond [, "what"] [, #{timeout: 5, every: 0.05}]): for the rare
    // state no readiness wait covers (a program's own start-up, a timer in the
    // kernel): polls the closure until it returns true; a check that fails when
    // the time runs out.
    let (ss, r) = (s.clone(), rep.clone());
    let wait = move |ctx: NativeCallContext, cond: FnPtr, what: &str, opts: Map| -> RhaiResult<()> {
        check_options(&ctx, &opts, &["timeout", "every"])?;
        let what =
            if what.is_empty() { format!("the condition at line {} holds", line(&ctx)) } else { what.to_string() };
        let timeout = seconds(&ctx, &opts, "timeout", 5.0)?;
        let every = seconds(&ctx, &opts, "every", 0.05)?.max(0.001);
        ss.claim(&ctx, &what);
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&what);
            return Ok(());
        }
        let limit = ss.deadline(timeout);
        let start = std::time::Instant::now();
        let mut polls = 0u64;
        loop {
            let value: Dynamic = cond.call_within_context(&ctx, ())?;
            polls += 1;
            let holds = value
                .as_bool()
                .map_err(|_| super::values::type_error(&ctx, "a closure that returns true or false", &value))?;
            if holds {
                let after = crate::report::fmt_duration(start.elapsed());
                r.borrow_mut().check_passed(&format!("{what}: after {after}"), line(&ctx));
                return Ok(());
            }
            if start.elapsed() >= limit || netlab_runtime::interrupt::signal().is_some() {
                let detail = format!("still false after {:.1} s ({polls} tries)", start.elapsed().as_secs_f64());
                return Err(fail_check(&ctx, &r, what, detail, None));
            }
            std::thread::sleep(std::time::Duration::from_secs_f64(every).min(limit.saturating_sub(start.elapsed())));
        }
    };
    let w = wait.clone();
    engine.register_fn("wait_until", move |ctx: NativeCallContext, cond: FnPtr| w(ctx, cond, "", Map::new()));
    let w = wait.clone();
    engine.register_fn("wait_until", move |ctx: NativeCallContext, cond: FnPtr, what: &str| {
        w(ctx, cond, what, Map::new())
    });
    let w = wait.clone();
    engine.register_fn("wait_until", move |ctx: NativeCallContext, cond: FnPtr, opts: Map| w(ctx, cond, "", opts));
    engine.register_fn("wait_until", wait);

    let (ss, r) = (s.clone(), rep.clone());
    engine.register_fn("expect", move |ctx: NativeCallContext, cond: bool, what: &str| -> RhaiResult<()> {
        ss.claim(&ctx, what);
        if !ss.evaluates() {
            r.borrow_mut().check_planned(what);
            return Ok(());
        }
        if cond {
            r.borrow_mut().check_passed(what, line(&ctx));
            Ok(())
        } else {
            Err(fail_check(&ctx, &r, what.to_string(), "the condition is false".into(), None))
        }
    });
    let (ss, r) = (s.clone(), rep.clone());
    engine.register_fn(
        "expect_eq",
        move |ctx: NativeCallContext, actual: Dynamic, expected: Dynamic, what: &str| -> RhaiResult<()> {
            ss.claim(&ctx, what);
            if !ss.evaluates() {
                r.borrow_mut().check_planned(what);
                return Ok(());
            }
            let same = actual.type_name() == expected.type_name() && actual.to_string() == expected.to_string();
            if same {
                let shown = actual.to_string();
                let text = if what.contains(&shown) { what.to_string() } else { format!("{what}: {shown}") };
                r.borrow_mut().check_passed(&text, line(&ctx));
                Ok(())
            } else {
                let detail = format!("expected {expected:?}, got {actual:?}");
                Err(fail_check(&ctx, &r, what.to_string(), detail, None))
            }
        },
    );

    register_batch(engine, s, rep);
    register_exec(engine, s);
}

/// Pings from many nodes at once: ping_count() and expect_ping_all(); metric().
fn register_batch(engine: &mut Engine, s: &Rc<Session>, rep: &Rc<RefCell<Reporter>>) {
    fn nodes(ctx: &NativeCallContext, ss: &Session, list: &rhai::Array) -> RhaiResult<Vec<NodeName>> {
        list.iter().map(|v| ss.node(ctx, v)).collect()
    }
    // ping_count(nodes, dst) counts the nodes that got a reply; ping_count(nodes,
    // [dst, ...]) has each node ping the addresses one after the other (the second
    // meets the next hop the first resolved) and counts per address.
    let ss = s.clone();
    let counts =
        move |ctx: &NativeCallContext, list: rhai::Array, dsts: Vec<String>, opts: Map| -> RhaiResult<Vec<i64>> {
            check_options(ctx, &opts, &["timeout", "tries"])?;
            let sources = nodes(ctx, &ss, &list)?;
            let ips = dsts.iter().map(|d| to_rhai(ctx, parse_ip(d))).collect::<RhaiResult<Vec<_>>>()?;
            let timeout = ss.deadline(seconds(ctx, &opts, "timeout", 1.0)?);
            // At most one echo request per millisecond of the timeout's scale.
            let interval = match super::limits::int_in(ctx, &opts, "tries", 1..=MAX_TRIES)? {
                None => Duration::from_millis(100),
                Some(tries) => timeout / u32::try_from(tries).unwrap_or(u32::MAX),
            };
            for ip in &ips {
                ss.probe(ctx, Probe::PingAll { nodes: sources.clone(), dst: *ip, expect: None });
            }
            if !ss.evaluates() {
                return Ok(vec![0; ips.len()]);
            }
            let (reports, _) =
                to_rhai(ctx, ss.backend().ping_many(&sources, &ips, PingMode::UntilReply { timeout }, interval))?;
            Ok((0..ips.len()).map(|d| reports.iter().filter(|r| r[d].received > 0).count() as i64).collect())
        };
    let c = counts.clone();
    let one = move |ctx: NativeCallContext, list: rhai::Array, dst: &str, opts: Map| -> RhaiResult<i64> {
        Ok(c(&ctx, list, vec![dst.to_string()], opts)?[0])
    };
    let c = counts.clone();
    let many =
        move |ctx: NativeCallContext, list: rhai::Array, dsts: rhai::Array, opts: Map| -> RhaiResult<rhai::Array> {
            if dsts.is_empty() {
                return Err(super::values::runtime_error(&ctx, "ping_count: the list of addresses is empty".into()));
            }
            let dsts = dsts
                .into_iter()
                .map(|d| {
                    d.clone().into_string().map_err(|_| super::values::type_error(&ctx, "an address (string)", &d))
                })
                .collect::<RhaiResult<Vec<_>>>()?;
            Ok(c(&ctx, list, dsts, opts)?.into_iter().map(Dynamic::from).collect())
        };
    let o = one.clone();
    engine.register_fn("ping_count", move |ctx: NativeCallContext, list: rhai::Array, dst: &str| {
        o(ctx, list, dst, Map::new())
    });
    engine.register_fn("ping_count", one);
    let m = many.clone();
    engine.register_fn("ping_count", move |ctx: NativeCallContext, list: rhai::Array, dsts: rhai::Array| {
        m(ctx, list, dsts, Map::new())
    });
    engine.register_fn("ping_count", many);

    let (ss, r) = (s.clone(), rep.clone());
    let all = move |ctx: NativeCallContext, list: rhai::Array, dst: &str, opts: Map| -> RhaiResult<()> {
        check_options(&ctx, &opts, &["timeout"])?;
        let sources = nodes(&ctx, &ss, &list)?;
        let ip = to_rhai(&ctx, parse_ip(dst))?;
        let timeout = ss.deadline(seconds(&ctx, &opts, "timeout", 3.0)?);
        ss.probe(&ctx, Probe::PingAll { nodes: sources.clone(), dst: ip, expect: Some(Expect::Answer) });
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&format!("{} nodes ping {dst}", sources.len()));
            return Ok(());
        }
        let interval = Duration::from_millis(100);
        let (reports, flushes) =
            to_rhai(&ctx, ss.backend().ping_many(&sources, &[ip], PingMode::UntilReply { timeout }, interval))?;
        let failed: Vec<String> =
            sources.iter().zip(&reports).filter(|(_, r)| r[0].received == 0).map(|(n, _)| n.to_string()).collect();
        let mut title = format!("{} nodes ping {dst}", sources.len());
        if flushes > 0 {
            title += &format!(" (neighbour tables flushed {flushes}x: the machine's table is shared and limited)");
        }
        if failed.is_empty() {
            r.borrow_mut().check_passed(&title, line(&ctx));
            Ok(())
        } else {
            let shown: Vec<String> = failed.iter().take(10).cloned().collect();
            let more = if failed.len() > 10 { format!(" and {} more", failed.len() - 10) } else { String::new() };
            Err(fail_check(&ctx, &r, title, format!("no reply from {}{more}", shown.join(", ")), None))
        }
    };
    let a = all.clone();
    engine.register_fn("expect_ping_all", move |ctx: NativeCallContext, list: rhai::Array, dst: &str| {
        a(ctx, list, dst, Map::new())
    });
    engine.register_fn("expect_ping_all", all);

    let r = rep.clone();
    engine.register_fn("metric", move |name: &str, value: Dynamic| r.borrow_mut().metric(name, &value.to_string()));
}

fn register_exec(engine: &mut Engine, s: &Rc<Session>) {
    let ss = s.clone();
    let exec = move |ctx: NativeCallContext, node: Dynamic, cmd: &str, opts: Map| -> RhaiResult<Map> {
        check_options(&ctx, &opts, &["timeout"])?;
        let node = ss.node(&ctx, &node)?;
        let line = to_rhai(&ctx, CommandLine::parse(cmd))?;
        let timeout = ss.deadline(seconds(&ctx, &opts, "timeout", 10.0)?);
        let out = ss.exec(&ctx, Op::Exec { node, command: cmd.to_string() }, &line, timeout)?;
        let mut m = Map::new();
        m.insert("code".into(), (out.code.unwrap_or(-1) as i64).into());
        m.insert("stdout".into(), out.stdout.into());
        m.insert("stderr".into(), out.stderr.into());
        // Output beyond OUTPUT_KEPT bytes per stream is counted, not kept.
        m.insert("truncated".into(), (out.stdout_dropped > 0 || out.stderr_dropped > 0).into());
        m.insert("stdout_dropped".into(), i64::try_from(out.stdout_dropped).unwrap_or(i64::MAX).into());
        m.insert("stderr_dropped".into(), i64::try_from(out.stderr_dropped).unwrap_or(i64::MAX).into());
        Ok(m)
    };
    let e = exec.clone();
    engine
        .register_fn("exec_in", move |ctx: NativeCallContext, node: Dynamic, cmd: &str| e(ctx, node, cmd, Map::new()));
    engine.register_fn("exec_in", exec);

    // sh(node, "cmd" [, #{timeout}]): exec_in that stops the lab when the command
    // fails, with its stderr, at the line; returns its stdout.
    let ss = s.clone();
    let sh = move |ctx: NativeCallContext, node: Dynamic, cmd: &str, opts: Map| -> RhaiResult<String> {
        check_options(&ctx, &opts, &["timeout"])?;
        let node = ss.node(&ctx, &node)?;
        let line = to_rhai(&ctx, CommandLine::parse(cmd))?;
        let timeout = ss.deadline(seconds(&ctx, &opts, "timeout", 10.0)?);
        let out = ss.exec(&ctx, Op::Exec { node: node.clone(), command: cmd.to_string() }, &line, timeout)?;
        if out.code == Some(0) {
            return Ok(out.stdout);
        }
        let status = match out.code {
            Some(code) => code.to_string(),
            None => "none (killed by a signal or at its timeout)".to_string(),
        };
        let tail: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(5)..].join("\n  ");
        let stderr = if tail.is_empty() { String::new() } else { format!(":\n  {tail}") };
        let help = Some(if out.code.is_none() {
            "give it more time with #{timeout: SECONDS}, or run it with exec_in() to look at its output".to_string()
        } else {
            "sh() stops the lab when a command fails; use exec_in() to run one whose failure the lab expects \
             (it returns #{code, stdout, stderr})"
                .to_string()
        });
        let status = format!("{status}{stderr}");
        let err = Error::CommandFailed { command: cmd.to_string(), node: node.to_string(), status, help };
        to_rhai(&ctx, Err(err))
    };
    let h = sh.clone();
    engine.register_fn("sh", move |ctx: NativeCallContext, node: Dynamic, cmd: &str| h(ctx, node, cmd, Map::new()));
    engine.register_fn("sh", sh);
}

/// A ping's destination: an address, or an IPv6 link-local one with its link
/// (`fe80::1%eth0`, as ping takes it). A link-local address without its link is
/// the lab's mistake: every link of the node has fe80::/64.
fn ping_dst(ctx: &NativeCallContext, dst: &str) -> RhaiResult<(std::net::IpAddr, Option<netlab_runtime::LinkName>)> {
    let (addr, zone) = match dst.split_once('%') {
        Some((addr, zone)) => (addr, Some(to_rhai(ctx, netlab_runtime::LinkName::new(zone))?)),
        None => (dst, None),
    };
    let ip = to_rhai(ctx, parse_ip(addr))?;
    let link_local = matches!(ip, std::net::IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
    match (&zone, link_local) {
        (Some(z), false) => Err(super::values::runtime_error(
            ctx,
            format!("%{z} names the link of an IPv6 link-local address (fe80::...%{z}); {ip} is not one"),
        )),
        (None, true) => Err(super::values::runtime_error(
            ctx,
            format!("{ip} is link-local: every link has fe80::/64, so say which one, e.g. \"{ip}%eth0\""),
        )),
        _ => Ok((ip, zone)),
    }
}

/// ping's -s, -M do, -t and -I from an options map.
fn ping_opts(ctx: &NativeCallContext, opts: &Map, dst: std::net::IpAddr) -> RhaiResult<PingOpts> {
    let int = |key: &str, range: std::ops::RangeInclusive<i64>| -> RhaiResult<Option<i64>> {
        let Some(v) = opts.get(key) else { return Ok(None) };
        let n = v.as_int().map_err(|_| super::values::type_error(ctx, &format!("an integer for {key}"), v))?;
        if !range.contains(&n) {
            let why = if key == "size" { " (netlab's probe carries an 8-byte token)" } else { "" };
            return Err(super::values::runtime_error(
                ctx,
                format!("{key} is {} to {}{why}, not {n}", range.start(), range.end()),
            ));
        }
        Ok(Some(n))
    };
    let max_size = if dst.is_ipv6() { 65_487 } else { 65_507 };
    let source = match opts.get("source") {
        None => None,
        Some(v) => {
            let text =
                v.clone().into_string().map_err(|_| super::values::type_error(ctx, "an address for source", v))?;
            let ip = to_rhai(ctx, parse_ip(&text))?;
            if ip.is_ipv6() != dst.is_ipv6() {
                return Err(super::values::runtime_error(
                    ctx,
                    format!("source {ip} and {dst} are of different IP versions"),
                ));
            }
            Some(ip)
        }
    };
    Ok(PingOpts {
        size: int("size", 8..=max_size)?.map(|n| n as u16),
        df: match opts.get("df") {
            None => false,
            Some(v) => v.as_bool().map_err(|_| super::values::type_error(ctx, "true or false for df", v))?,
        },
        ttl: int("ttl", 1..=255)?.map(|n| n as u8),
        source,
        zone: None,
    })
}

fn is_check_failure(e: &EvalAltResult) -> bool {
    matches!(super::diagnose::payload(e), Some(Failure::Check(_)))
}
