//! Impairments and what they do: impair(), clear_impair(), qdiscs() (read back from
//! the kernel), expect_rtt(), throughput() and expect_throughput(). Thin: the units
//! are parsed by the runtime (model/impair.rs), bad values are netlab::bad_option at
//! the option, unknown keys netlab::bad_argument.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use netlab_runtime::backend::kernel::addr::parse_ip;
use netlab_runtime::model::impair::{self, duration_text, rate_text, Impairment};
use netlab_runtime::model::{Op, Probe, QdiscParams, QdiscState};
use netlab_runtime::ping::{PingMode, PingOpts};
use netlab_runtime::{LinkName, NodeName};
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::limits::{bad_option, int_in};
use super::session::Session;
use super::values::{check_failure, reject_unknown, runtime_error, to_rhai, RhaiResult};
use crate::report::Reporter;

const IMPAIR_KEYS: [&str; 9] = ["delay", "jitter", "loss", "duplicate", "reorder", "rate", "limit", "burst", "latency"];
/// iperf3's port: where netlab's sink listens unless the lab says.
const SINK_PORT: u16 = 5201;
/// How long a throughput measurement lasts unless the lab says.
const MEASURE_SECONDS: f64 = 1.0;

fn number(value: &Dynamic) -> Option<f64> {
    value.as_float().ok().or_else(|| value.as_int().ok().map(|i| i as f64))
}

/// A duration: a number of milliseconds, or a string with tc's unit ("100ms").
fn duration(ctx: &NativeCallContext, key: &str, value: &Dynamic) -> RhaiResult<u64> {
    let parsed = match (number(value), value.clone().into_string()) {
        (Some(ms), _) => impair::duration_from_ms(ms),
        (None, Ok(text)) => impair::parse_duration(&text),
        (None, Err(t)) => Err(format!("must be milliseconds (100) or a string with a unit (\"100ms\"), not a {t}")),
    };
    parsed.map_err(|reason| bad_option(ctx, key, value, reason))
}

/// A percentage: a number (1 is 1%) or a string with its sign ("1%").
fn percent(ctx: &NativeCallContext, key: &str, value: &Dynamic) -> RhaiResult<f64> {
    let parsed = match (number(value), value.clone().into_string()) {
        (Some(p), _) => impair::percent_in_range(p),
        (None, Ok(text)) => impair::parse_percent(&text),
        (None, Err(t)) => Err(format!("must be a percentage (1 or \"1%\"), not a {t}")),
    };
    parsed.map_err(|reason| bad_option(ctx, key, value, reason))
}

/// A rate: a string with tc's unit ("10mbit"); a bare number would be ambiguous.
fn rate(ctx: &NativeCallContext, key: &str, value: &Dynamic) -> RhaiResult<u64> {
    let parsed = match value.clone().into_string() {
        Ok(text) => impair::parse_rate(&text),
        Err(_) if number(value).is_some() => {
            Err("a rate is a string with its unit, as tc writes it: \"10mbit\", \"500kbit\"".to_string())
        }
        Err(t) => Err(format!("must be a rate (\"10mbit\"), not a {t}")),
    };
    parsed.map_err(|reason| bad_option(ctx, key, value, reason))
}

fn impairment(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<Impairment> {
    reject_unknown(ctx, opts, &IMPAIR_KEYS)?;
    let dur = |key: &str| opts.get(key).map(|v| duration(ctx, key, v)).transpose();
    let pct = |key: &str| opts.get(key).map(|v| percent(ctx, key, v)).transpose();
    let i = Impairment {
        delay: dur("delay")?,
        jitter: dur("jitter")?,
        loss: pct("loss")?,
        duplicate: pct("duplicate")?,
        reorder: pct("reorder")?,
        rate: opts.get("rate").map(|v| rate(ctx, "rate", v)).transpose()?,
        limit: int_in(ctx, opts, "limit", 1..=i64::from(u32::MAX))?.map(|l| l as u32),
        burst: int_in(ctx, opts, "burst", 1..=i64::from(u32::MAX))?.map(|b| b as u32),
        latency: dur("latency")?,
    };
    i.validate().map_err(|reason| runtime_error(ctx, reason))?;
    Ok(i)
}

/// A qdisc as a map, in the units impair() takes: durations in ms, percentages,
/// rates in bit/s.
fn qdisc_map(q: &QdiscState) -> Map {
    let mut m = Map::new();
    m.insert("dev".into(), q.dev.clone().into());
    m.insert("kind".into(), q.kind.clone().into());
    m.insert("root".into(), q.root.into());
    let ms = |ns: f64| Dynamic::from(ns / 1e6);
    match &q.params {
        QdiscParams::Netem { delay_ns, jitter_ns, loss, duplicate, reorder, rate_bytes, limit } => {
            m.insert("delay".into(), ms(*delay_ns as f64));
            m.insert("jitter".into(), ms(*jitter_ns as f64));
            for (key, p) in [("loss", loss), ("duplicate", duplicate), ("reorder", reorder)] {
                m.insert(key.into(), Dynamic::from(impair::percent(*p)));
            }
            m.insert("rate".into(), Dynamic::from((rate_bytes * 8) as i64));
            m.insert("limit".into(), Dynamic::from(i64::from(*limit)));
        }
        QdiscParams::Tbf { rate_bytes, buffer_ticks, limit } => {
            m.insert("rate".into(), Dynamic::from((rate_bytes * 8) as i64));
            m.insert("burst".into(), Dynamic::from(QdiscParams::burst(*rate_bytes, *buffer_ticks) as i64));
            m.insert("limit".into(), Dynamic::from(i64::from(*limit)));
            let latency = QdiscParams::latency_ns(*rate_bytes, *buffer_ticks, *limit);
            m.insert("latency".into(), Dynamic::from((latency as f64 / 1e3).round() / 1e3));
        }
        QdiscParams::Other => {}
    }
    m
}

/// The node netlab's sink runs in: `server`, or the one node that has the address.
fn sink_node(ctx: &NativeCallContext, ss: &Session, opts: &Map, ip: std::net::IpAddr) -> RhaiResult<NodeName> {
    if let Some(server) = opts.get("server") {
        return ss.node(ctx, server);
    }
    let mut holders = Vec::new();
    for node in ss.backend().node_names() {
        let addrs = to_rhai(ctx, ss.backend().addresses(&node))?;
        if addrs.iter().any(|a| a.cidr.addr() == ip) {
            holders.push(node);
        }
    }
    match holders.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(runtime_error(
            ctx,
            format!("no node of the lab has the address {ip}: give server: the node netlab's sink should run in"),
        )),
        many => {
            let names: Vec<&str> = many.iter().map(|n| n.as_str()).collect();
            Err(runtime_error(ctx, format!("{ip} is an address of {}: say which with server:", names.join(" and "))))
        }
    }
}

/// The measurement's length: `seconds`, 0.1 to 10.
fn measure_seconds(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<f64> {
    let Some(v) = opts.get("seconds") else { return Ok(MEASURE_SECONDS) };
    match number(v) {
        Some(s) if (0.1..=10.0).contains(&s) => Ok(s),
        _ => Err(bad_option(ctx, "seconds", v, "must be a number of seconds from 0.1 to 10".into())),
    }
}

/// A bound pair: at least one, and min not above max.
fn bounds<T: PartialOrd + Copy>(
    ctx: &NativeCallContext,
    opts: &Map,
    parse: impl Fn(&str, &Dynamic) -> RhaiResult<T>,
) -> RhaiResult<(Option<T>, Option<T>)> {
    let min = opts.get("min").map(|v| parse("min", v)).transpose()?;
    let max = opts.get("max").map(|v| parse("max", v)).transpose()?;
    match (min, max) {
        (None, None) => Err(runtime_error(ctx, "give min, max or both".into())),
        (Some(a), Some(b)) if a > b => {
            Err(bad_option(ctx, "min", opts.get("min").expect("given"), "is above max".into()))
        }
        other => Ok(other),
    }
}

fn impairment_hint(ss: &Session, node: &NodeName) -> Option<String> {
    let qdiscs = ss.backend().qdiscs(node).ok()?;
    if qdiscs.is_empty() {
        return Some(format!("{node} has no qdisc of its own (impair() puts one on a link)"));
    }
    let shown: Vec<String> = qdiscs.iter().map(|q| format!("{} on {}", q.kind, q.dev)).collect();
    Some(format!("in {node}: {} (qdiscs(\"{node}\") shows them)", shown.join(", ")))
}

pub fn register(engine: &mut Engine, s: &Rc<Session>, rep: &Rc<RefCell<Reporter>>) {
    // impair(node, link, #{...}), clear_impair(node, link)
    let ss = s.clone();
    engine.register_fn(
        "impair",
        move |ctx: NativeCallContext, node: Dynamic, link: &str, opts: Map| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            let link = to_rhai(&ctx, LinkName::new(link))?;
            let impairment = impairment(&ctx, &opts)?;
            ss.apply(&ctx, Op::Impair { node, link, impairment }).map(|_| ())
        },
    );
    let ss = s.clone();
    engine.register_fn("clear_impair", move |ctx: NativeCallContext, node: Dynamic, link: &str| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        let link = to_rhai(&ctx, LinkName::new(link))?;
        ss.apply(&ctx, Op::ClearImpair { node, link }).map(|_| ())
    });

    // qdiscs(node): read back from the kernel.
    let ss = s.clone();
    engine.register_fn("qdiscs", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        let qdiscs = to_rhai(&ctx, ss.backend().qdiscs(&node))?;
        Ok(qdiscs.iter().map(|q| Dynamic::from(qdisc_map(q))).collect())
    });

    // expect_rtt(node, ip, #{min, max, count})
    let (ss, r) = (s.clone(), rep.clone());
    engine.register_fn(
        "expect_rtt",
        move |ctx: NativeCallContext, node: Dynamic, ip: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &["min", "max", "count"])?;
            let node = ss.node(&ctx, &node)?;
            let dst = to_rhai(&ctx, parse_ip(ip))?;
            let (min, max) = bounds(&ctx, &opts, |key, v| duration(&ctx, key, v))?;
            let count = int_in(&ctx, &opts, "count", 1..=100)?.unwrap_or(5) as u32;
            let title = format!(
                "round trip from {node} to {dst}: {}",
                netlab_runtime::render::ip::bounds_text(min.map(duration_text), max.map(duration_text))
            );
            ss.probe(&ctx, Probe::Rtt { node: node.clone(), dst, count, min, max });
            if !ss.evaluates() {
                r.borrow_mut().check_planned(&title);
                return Ok(());
            }
            // Each reply may come up to twice the upper bound late (at least 2 s).
            let wait = ss.deadline(max.map(|m| (m as f64 / 1e9 * 2.0).max(2.0)).unwrap_or(2.0));
            let report =
                to_rhai(&ctx, ss.backend().ping(&node, dst, PingMode::Count { count, wait }, &PingOpts::default()))?;
            let mut rtts: Vec<Duration> = report.rtts.clone();
            rtts.sort();
            let Some(median) = rtts.get((rtts.len().max(1) - 1) / 2).copied() else {
                let detail = format!("no reply to {count} requests");
                return Err(check_failure(&ctx, &r, title, detail, None));
            };
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let avg = rtts.iter().map(|d| ms(*d)).sum::<f64>() / rtts.len() as f64;
            let seen = format!(
                "median {:.1} ms (min/avg/max {:.1}/{:.1}/{:.1} ms, {} of {count} answered)",
                ms(median),
                ms(rtts[0]),
                avg,
                ms(rtts[rtts.len() - 1]),
                rtts.len()
            );
            let ns = median.as_nanos() as u64;
            if min.is_some_and(|m| ns < m) || max.is_some_and(|m| ns > m) {
                return Err(check_failure(&ctx, &r, title, seen, impairment_hint(&ss, &node)));
            }
            r.borrow_mut().check_passed(&format!("{title}: {seen}"), super::values::line(&ctx));
            Ok(())
        },
    );

    // throughput(from, ip [, #{seconds, port, server}]) -> Mbit/s
    let ss = s.clone();
    let throughput = move |ctx: NativeCallContext, node: Dynamic, ip: &str, opts: Map| -> RhaiResult<f64> {
        reject_unknown(&ctx, &opts, &["seconds", "port", "server"])?;
        let (node, dst, server, seconds) = measurement(&ctx, &ss, &node, ip, &opts)?;
        let probe = Probe::Throughput {
            node: node.clone(),
            server: server.clone(),
            dst,
            seconds,
            check: false,
            min: None,
            max: None,
        };
        ss.probe(&ctx, probe);
        let measured = to_rhai(&ctx, ss.backend().throughput(&node, &server, dst, Duration::from_secs_f64(seconds)))?;
        Ok(measured.map(|t| t.bits_per_second() / 1e6).unwrap_or(0.0))
    };
    let t = throughput.clone();
    engine
        .register_fn("throughput", move |ctx: NativeCallContext, node: Dynamic, ip: &str| t(ctx, node, ip, Map::new()));
    engine.register_fn("throughput", throughput);

    // expect_throughput(from, ip, #{min, max, seconds, port, server})
    let (ss, r) = (s.clone(), rep.clone());
    engine.register_fn(
        "expect_throughput",
        move |ctx: NativeCallContext, node: Dynamic, ip: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &["min", "max", "seconds", "port", "server"])?;
            let (min, max) = bounds(&ctx, &opts, |key, v| rate(&ctx, key, v))?;
            let (node, dst, server, seconds) = measurement(&ctx, &ss, &node, ip, &opts)?;
            let title = format!(
                "TCP from {node} to {dst}: {}",
                netlab_runtime::render::ip::bounds_text(min.map(rate_text), max.map(rate_text))
            );
            let probe =
                Probe::Throughput { node: node.clone(), server: server.clone(), dst, seconds, check: true, min, max };
            ss.probe(&ctx, probe);
            if !ss.evaluates() {
                r.borrow_mut().check_planned(&title);
                return Ok(());
            }
            let measured =
                match to_rhai(&ctx, ss.backend().throughput(&node, &server, dst, Duration::from_secs_f64(seconds)))? {
                    Ok(t) => t,
                    Err(e) => return Err(check_failure(&ctx, &r, title, e.to_string(), None)),
                };
            let bits = measured.bits_per_second();
            let seen = format!(
                "{:.1} Mbit/s ({:.2} MB in {:.2} s)",
                bits / 1e6,
                measured.bytes as f64 / 1e6,
                measured.elapsed.as_secs_f64()
            );
            if min.is_some_and(|m| bits < m as f64) || max.is_some_and(|m| bits > m as f64) {
                return Err(check_failure(&ctx, &r, title, seen, impairment_hint(&ss, &node)));
            }
            r.borrow_mut().check_passed(&format!("{title}: {seen}"), super::values::line(&ctx));
            Ok(())
        },
    );
}

/// A measurement's sender, target (address and port), sink node and length.
fn measurement(
    ctx: &NativeCallContext,
    ss: &Session,
    node: &Dynamic,
    ip: &str,
    opts: &Map,
) -> RhaiResult<(NodeName, std::net::SocketAddr, NodeName, f64)> {
    let node = ss.node(ctx, node)?;
    let ip = to_rhai(ctx, parse_ip(ip))?;
    let port = int_in(ctx, opts, "port", 1..=65535)?.map(|p| p as u16).unwrap_or(SINK_PORT);
    let seconds = measure_seconds(ctx, opts)?;
    let server = sink_node(ctx, ss, opts, ip)?;
    Ok((node, std::net::SocketAddr::new(ip, port), server, seconds))
}
