//! The path packets take, hop by hop, as traceroute finds it: `trace(node, ip)`
//! returns it, `expect_path(node, ip, [hops])` checks it. Each hop is an echo
//! request with a TTL one larger than the last; a router that finds the TTL spent
//! answers "Time to live exceeded" from its own address, the destination answers
//! the echo. netlab sends them from its raw ICMP socket (runtime/src/ping.rs).

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use netlab_runtime::backend::kernel::addr::parse_ip;
use netlab_runtime::model::{Expect, Probe};
use netlab_runtime::outcome::Reason;
use netlab_runtime::ping::{PingMode, PingOpts};
use netlab_runtime::NodeName;
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::session::Session;
use super::values::{check_failure, line, opt_seconds, reject_unknown, runtime_error, to_rhai, type_error, RhaiResult};
use crate::report::Reporter;

/// traceroute's own limit.
const MAX_HOPS: i64 = 30;

/// How long a hop may take to answer: between namespaces an answer takes
/// microseconds; a hop that stays silent this long is `*`.
const HOP_TIMEOUT: f64 = 0.5;

/// One hop as traceroute prints it: the address that answered, `ADDR !H` (!N, !X,
/// !F) where an ICMP error ended the path there, `*` when nothing answered, or
/// `!REASON` when the node's own kernel did not send it.
#[derive(Debug, Clone, PartialEq)]
enum Hop {
    Answered(IpAddr),
    Error(IpAddr, &'static str),
    Silent,
    /// The node's own kernel refused to send it ("Network is unreachable").
    Refused(String),
}

impl Hop {
    fn text(&self) -> String {
        match self {
            Hop::Answered(ip) => ip.to_string(),
            Hop::Error(ip, mark) => format!("{ip} {mark}"),
            Hop::Silent => "*".to_string(),
            Hop::Refused(why) => format!("!{why}"),
        }
    }
}

/// Sends one request per TTL from 1 up, until the destination answers, an ICMP
/// error other than "time exceeded" ends the path, or `max` hops.
fn trace(ss: &Session, node: &NodeName, dst: IpAddr, max: u8, timeout: Duration) -> netlab_runtime::Result<Vec<Hop>> {
    let mut hops = Vec::new();
    for ttl in 1..=max {
        let opts = PingOpts { ttl: Some(ttl), ..PingOpts::default() };
        let report = ss.backend().ping(node, dst, PingMode::FirstAnswer { timeout }, &opts)?;
        if report.received > 0 {
            hops.push(Hop::Answered(dst));
            break;
        }
        let hop = report.reasons.iter().find_map(|r| match r {
            Reason::TtlExceeded { from: Some(at) } => Some(Hop::Answered(*at)),
            Reason::NetUnreachable { from: Some(at) } => Some(Hop::Error(*at, "!N")),
            Reason::HostUnreachable { from: Some(at) } => Some(Hop::Error(*at, "!H")),
            Reason::Prohibited { from: Some(at) } => Some(Hop::Error(*at, "!X")),
            Reason::FragNeeded { from: Some(at), .. } => Some(Hop::Error(*at, "!F")),
            _ => None,
        });
        match hop {
            Some(h @ Hop::Error(..)) => {
                hops.push(h);
                break;
            }
            Some(h) => hops.push(h),
            // The local kernel refused it (no route): the path ends before it starts.
            None if !report.reasons.is_empty() && report.reasons.iter().all(|r| *r != Reason::Silence) => {
                hops.push(Hop::Refused(netlab_runtime::outcome::describe(&report.reasons)));
                break;
            }
            None => hops.push(Hop::Silent),
        }
    }
    Ok(hops)
}

fn max_hops(ctx: &NativeCallContext, opts: &Map, default: i64) -> RhaiResult<u8> {
    let Some(v) = opts.get("max_hops") else { return Ok(default.clamp(1, MAX_HOPS) as u8) };
    let n = v.as_int().map_err(|_| type_error(ctx, "an integer for max_hops", v))?;
    if !(1..=MAX_HOPS).contains(&n) {
        return Err(runtime_error(ctx, format!("max_hops is 1 to {MAX_HOPS}, not {n}")));
    }
    Ok(n as u8)
}

pub fn register(engine: &mut Engine, s: &Rc<Session>, rep: &Rc<RefCell<Reporter>>) {
    // trace(node, "10.2.0.2" [, #{max_hops: 30, timeout: 0.5}]): the hops as strings.
    let ss = s.clone();
    let tracer = move |ctx: NativeCallContext, node: Dynamic, dst: &str, opts: Map| -> RhaiResult<Array> {
        reject_unknown(&ctx, &opts, &["max_hops", "timeout"])?;
        let node = ss.node(&ctx, &node)?;
        let ip = to_rhai(&ctx, parse_ip(dst))?;
        let max = max_hops(&ctx, &opts, MAX_HOPS)?;
        let timeout = ss.deadline(opt_seconds(&ctx, &opts, "timeout", HOP_TIMEOUT)?);
        ss.probe(&ctx, Probe::Path { node: node.clone(), dst: ip, hops: Vec::new(), expect: None });
        if !ss.evaluates() {
            return Ok(Array::new());
        }
        let hops = to_rhai(&ctx, trace(&ss, &node, ip, max, timeout))?;
        Ok(hops.iter().map(|h| Dynamic::from(h.text())).collect())
    };
    let t = tracer.clone();
    engine.register_fn("trace", move |ctx: NativeCallContext, node: Dynamic, dst: &str| t(ctx, node, dst, Map::new()));
    engine.register_fn("trace", tracer);

    // expect_path(node, "10.2.0.2", ["10.1.0.1", "10.2.0.2"] [, #{timeout}]): the
    // routers on the way, in order, then the destination.
    let (ss, r) = (s.clone(), rep.clone());
    let expect_path =
        move |ctx: NativeCallContext, node: Dynamic, dst: &str, hops: Array, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &["timeout"])?;
            let node = ss.node(&ctx, &node)?;
            let ip = to_rhai(&ctx, parse_ip(dst))?;
            if hops.is_empty() || hops.len() > MAX_HOPS as usize {
                return Err(runtime_error(
                    &ctx,
                    format!("a path is 1 to {MAX_HOPS} hops, the destination last, not {}", hops.len()),
                ));
            }
            let mut wanted = Vec::with_capacity(hops.len());
            for h in &hops {
                let text = h.clone().into_string().map_err(|_| type_error(&ctx, "an address for each hop", h))?;
                let hop = to_rhai(&ctx, parse_ip(&text))?;
                if hop.is_ipv6() != ip.is_ipv6() {
                    return Err(runtime_error(&ctx, format!("hop {hop} and {ip} are of different IP versions")));
                }
                wanted.push(hop);
            }
            if wanted.last() != Some(&ip) {
                return Err(runtime_error(
                    &ctx,
                    format!("a path ends at its destination: make {dst} the last hop, as traceroute prints it"),
                ));
            }
            let timeout = ss.deadline(opt_seconds(&ctx, &opts, "timeout", HOP_TIMEOUT)?);
            let shown: Vec<String> = wanted.iter().map(|h| h.to_string()).collect();
            let title = format!("{node} reaches {dst} through {}", shown.join(" → "));
            ss.probe(
                &ctx,
                Probe::Path { node: node.clone(), dst: ip, hops: wanted.clone(), expect: Some(Expect::Answer) },
            );
            if !ss.evaluates() {
                r.borrow_mut().check_planned(&title);
                return Ok(());
            }
            // One hop further than asked: a path that is longer shows where it goes on.
            let max = (wanted.len() + 1).min(MAX_HOPS as usize) as u8;
            let got = to_rhai(&ctx, trace(&ss, &node, ip, max, timeout))?;
            let expected: Vec<Hop> = wanted.iter().map(|h| Hop::Answered(*h)).collect();
            if got == expected {
                r.borrow_mut().check_passed(&title, line(&ctx));
                return Ok(());
            }
            let seen: Vec<String> = got.iter().map(Hop::text).collect();
            let mut detail = format!("the path was {}", seen.join(" → "));
            if !got.contains(&Hop::Answered(ip)) {
                detail += &format!(" ({dst} did not answer within {} hops)", got.len());
            }
            let hint = got.iter().zip(&wanted).position(|(g, w)| *g != Hop::Answered(*w)).map(|i| {
                format!(
                    "hop {} differs: check the route {} uses towards {dst}",
                    i + 1,
                    if i == 0 { node.to_string() } else { seen[i - 1].clone() }
                )
            });
            Err(check_failure(&ctx, &r, title, detail, hint))
        };
    let e = expect_path.clone();
    engine.register_fn("expect_path", move |ctx: NativeCallContext, node: Dynamic, dst: &str, hops: Array| {
        e(ctx, node, dst, hops, Map::new())
    });
    engine.register_fn("expect_path", expect_path);
}
