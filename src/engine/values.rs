//! Values shared by the bindings: failures carried through Rhai,
//! and conversions of runtime data into Rhai maps.

use std::rc::Rc;

use netlab_runtime::model::{LinkDetails, LinkKind, LinkState};
use netlab_runtime::Error;
use rhai::{Dynamic, EvalAltResult, Map, NativeCallContext, Position};

/// A failed check, carried through Rhai up to the report.
#[derive(Debug, Clone)]
pub struct CheckFailure {
    pub title: String,
    pub detail: String,
    pub hint: Option<String>,
}

/// What aborts a lab: a failed check (exit 1), an error (exit 2 or 3), or
/// `--until STEP` reached (a pass).
#[derive(Clone)]
pub enum Failure {
    Check(Rc<CheckFailure>),
    Error(Rc<Error>),
    StopAfter(String),
    /// `skip(reason)` / `requires(...)`: the rest of the lab cannot run here.
    Skip(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Check(c) => write!(f, "check failed: {}: {}", c.title, c.detail),
            Failure::Error(e) => write!(f, "{e}"),
            Failure::StopAfter(step) => write!(f, "stopped after step {step} (--until)"),
            Failure::Skip(reason) => write!(f, "skipped: {reason}"),
        }
    }
}

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// The line of the lab a call is on (0 when Rhai does not know it).
pub fn line(ctx: &NativeCallContext) -> usize {
    ctx.call_position().line().unwrap_or(0)
}

pub fn failure(failure: Failure, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(failure), pos))
}

/// Converts a runtime error into a Rhai error at the call's position.
pub fn to_rhai<T>(ctx: &NativeCallContext, r: Result<T, Error>) -> RhaiResult<T> {
    r.map_err(|e| held_or(e, ctx.call_position()))
}

/// An error at `pos`, unless it belongs to an op the backend held back: then at that
/// op's own position.
pub fn held_or(e: Error, pos: Position) -> Box<EvalAltResult> {
    match e {
        Error::Held { origin: (line, col), source } if line > 0 => {
            failure(Failure::Error(Rc::new(*source)), Position::new(line, col))
        }
        Error::Held { source, .. } => failure(Failure::Error(Rc::new(*source)), pos),
        e => failure(Failure::Error(Rc::new(e)), pos),
    }
}

pub fn link_map(link: &LinkState, links: &[LinkState]) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), link.name.clone().into());
    m.insert("index".into(), (link.index as i64).into());
    m.insert("kind".into(), link.kind.as_str().into());
    m.insert("mac".into(), link.mac.clone().into());
    m.insert("up".into(), link.admin_up.into());
    m.insert("state".into(), link.oper.as_str().into());
    m.insert("carrier".into(), link.carrier.into());
    m.insert("mtu".into(), (link.mtu as i64).into());
    let master = link.master.and_then(|i| links.iter().find(|l| l.index == i)).map(|l| l.name.clone());
    m.insert("master".into(), master.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    m.insert("peer_ifindex".into(), link.peer_index.map(|i| Dynamic::from(i as i64)).unwrap_or(Dynamic::UNIT));
    m.insert("port_state".into(), link.port_state.map(|p| Dynamic::from(p.as_str())).unwrap_or(Dynamic::UNIT));
    m.insert("txqueuelen".into(), (link.txqueuelen as i64).into());
    m.insert("alias".into(), link.alias.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    // IPv6 on for the link (its disable_ipv6 is 0): netlab keeps it off on new links
    // until the lab uses IPv6.
    m.insert("ipv6".into(), link.ipv6.into());
    // A vlan's or macvlan's parent (IFLA_LINK), by name when it is in the same node.
    let parent = match link.kind {
        LinkKind::Vlan | LinkKind::Macvlan => {
            link.peer_index.and_then(|i| links.iter().find(|l| l.index == i)).map(|l| l.name.clone())
        }
        _ => None,
    };
    m.insert("parent".into(), parent.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    match &link.details {
        Some(LinkDetails::Vlan { id }) => {
            m.insert("vlan_id".into(), (*id as i64).into());
        }
        Some(LinkDetails::Macvlan { mode }) => {
            m.insert("mode".into(), mode.name().into());
        }
        Some(LinkDetails::Tun { tap }) => {
            m.insert("mode".into(), if *tap { "tap" } else { "tun" }.into());
        }
        Some(LinkDetails::Vxlan { vni, dstport, remote, group }) => {
            m.insert("vni".into(), (*vni as i64).into());
            m.insert("dstport".into(), (*dstport as i64).into());
            m.insert("remote".into(), remote.map(|r| Dynamic::from(r.to_string())).unwrap_or(Dynamic::UNIT));
            m.insert("group".into(), group.map(|g| Dynamic::from(g.to_string())).unwrap_or(Dynamic::UNIT));
        }
        Some(LinkDetails::Bridge(b)) => {
            m.insert("stp".into(), b.stp.into());
            m.insert("ageing".into(), (b.ageing as i64).into());
            m.insert("forward_delay".into(), (b.forward_delay as i64).into());
            m.insert("vlan_filtering".into(), b.vlan_filtering.into());
            m.insert("default_pvid".into(), (b.default_pvid as i64).into());
        }
        Some(LinkDetails::Bond { mode, miimon, active }) => {
            m.insert("mode".into(), mode.name().into());
            m.insert("miimon".into(), (*miimon as i64).into());
            let active = active.and_then(|i| links.iter().find(|l| l.index == i)).map(|l| l.name.clone());
            m.insert("active".into(), active.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
            let ports: rhai::Array =
                links.iter().filter(|l| l.master == Some(link.index)).map(|l| l.name.clone().into()).collect();
            m.insert("ports".into(), ports.into());
        }
        None => {}
    }
    if let Some(o) = &link.port_opts {
        for (key, value) in [("learning", o.learning), ("flood", o.flood), ("isolated", o.isolated)] {
            m.insert(key.into(), value.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
        }
    }
    m
}

/// An argument the function cannot use, with the message saying why, at the call's
/// position (netlab::bad_argument; a lab's own `throw` is netlab::thrown).
pub fn runtime_error(ctx: &NativeCallContext, message: String) -> Box<EvalAltResult> {
    failure(Failure::Error(Rc::new(Error::BadArgument { message })), ctx.call_position())
}

pub fn type_error(ctx: &NativeCallContext, expected: &str, got: &Dynamic) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorMismatchDataType(expected.into(), got.type_name().into(), ctx.call_position()))
}

/// Option keys that were renamed, with their new names: `in` is a Rhai keyword
/// (`#{in: ...}` does not parse), so the interface keys are nft's and iptables' words.
pub const RENAMED_KEYS: &[(&str, &str)] = &[("in", "iif"), ("out", "oif"), ("not_out", "not_oif")];

/// Options maps accept only the keys a function knows: a typo is an error.
pub fn reject_unknown(ctx: &NativeCallContext, opts: &Map, allowed: &[&str]) -> RhaiResult<()> {
    for key in opts.keys() {
        if let Some((old, new)) = RENAMED_KEYS.iter().find(|(old, new)| key == old && allowed.contains(new)) {
            return Err(runtime_error(
                ctx,
                format!("option {old:?} was renamed: use iif/oif/not_oif (here: {new}), as nft and iptables say"),
            ));
        }
        if !allowed.contains(&key.as_str()) {
            return Err(runtime_error(
                ctx,
                format!("unknown option {key:?}; this function takes: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// A string option.
pub fn opt_str(ctx: &NativeCallContext, opts: &Map, key: &str) -> RhaiResult<Option<String>> {
    match opts.get(key) {
        None => Ok(None),
        Some(v) => v.clone().into_string().map(Some).map_err(|_| type_error(ctx, &format!("a string for {key}"), v)),
    }
}

/// A number-of-seconds option, from 0 to limits::MAX_SECONDS.
/// An integer option within `range`, or None when absent.
pub fn opt_int(
    ctx: &NativeCallContext,
    opts: &Map,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
) -> RhaiResult<Option<i64>> {
    let Some(v) = opts.get(key) else { return Ok(None) };
    let n = v.as_int().map_err(|_| type_error(ctx, &format!("an integer for {key}"), v))?;
    if !range.contains(&n) {
        return Err(runtime_error(ctx, format!("{key} is {} to {}, not {n}", range.start(), range.end())));
    }
    Ok(Some(n))
}

/// A true/false option, or None when absent.
pub fn opt_bool(ctx: &NativeCallContext, opts: &Map, key: &str) -> RhaiResult<Option<bool>> {
    opts.get(key).map(|v| v.as_bool().map_err(|_| type_error(ctx, &format!("true or false for {key}"), v))).transpose()
}

pub fn opt_seconds(ctx: &NativeCallContext, opts: &Map, key: &str, default: f64) -> RhaiResult<f64> {
    match opts.get(key) {
        None => Ok(default),
        Some(v) => super::limits::seconds(ctx, key, v),
    }
}

/// Records a failed check in the report and returns the error that aborts the lab.
pub fn check_failure(
    ctx: &NativeCallContext,
    rep: &std::cell::RefCell<crate::report::Reporter>,
    title: String,
    detail: String,
    hint: Option<String>,
) -> Box<EvalAltResult> {
    rep.borrow_mut().check_failed(&title, &detail, line(ctx));
    failure(Failure::Check(Rc::new(CheckFailure { title, detail, hint })), ctx.call_position())
}
