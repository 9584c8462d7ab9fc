//! Bindings for services in nodes and the probes that use them: http_server(),
//! dns_server(), curl(), resolve(), listening(), the per-node /etc files and
//! hostname, and their checks expect_http(), expect_no_http(), expect_resolve().

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use netlab_runtime::lab::{Server, ServerKind};
use netlab_runtime::outcome::{Reason, Wanted};
use netlab_runtime::{Error, Lab, Node};
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::values::{
    check_failure, node_arg, opt_seconds, opt_str, reject_unknown, runtime_error, to_rhai, type_error, RhaiResult,
};
use crate::report::{fmt_duration, Reporter};

/// How long expect_no_http / expect_no_resolve wait by default: between a lab's
/// namespaces a SYN or a query is answered in microseconds, and neighbour
/// resolution takes at most 30 ms (see Lab::tune_neighbours); a connection or a
/// query that gets no answer in this time gets none.
const NEGATIVE_HTTP_WINDOW: f64 = 0.1;

/// A server handle as scripts see it (type name "Server").
#[derive(Clone)]
pub struct ServerRef(pub Rc<Server>);

fn socket_addr(ctx: &NativeCallContext, text: &str, default_port: u16) -> RhaiResult<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    to_rhai(
        ctx,
        Err(Error::BadAddress {
            value: text.to_string(),
            expected: "listen address",
            reason: "not IP:PORT".into(),
            help: Some(format!("e.g. \"0.0.0.0:{default_port}\" (all addresses) or \"127.0.0.1:{default_port}\"")),
        }),
    )
}

fn ip_list(ctx: &NativeCallContext, name: &str, value: &Dynamic) -> RhaiResult<Vec<IpAddr>> {
    let items: Vec<Dynamic> = if value.is_array() { value.clone().cast::<Array>() } else { vec![value.clone()] };
    items
        .iter()
        .map(|v| {
            let text = v.clone().into_string().map_err(|_| type_error(ctx, &format!("an IP address for {name}"), v))?;
            to_rhai(ctx, netlab_runtime::addr::parse_ip(&text))
        })
        .collect()
}

fn http_reply_map(reply: &Result<netlab_runtime::service::HttpReply, netlab_runtime::service::CurlError>) -> Map {
    let mut m = Map::new();
    match reply {
        Ok(r) => {
            m.insert("ok".into(), true.into());
            m.insert("status".into(), (r.status as i64).into());
            m.insert("body".into(), r.body.clone().into());
            m.insert("error".into(), Dynamic::UNIT);
        }
        Err(e) => {
            m.insert("ok".into(), false.into());
            m.insert("status".into(), Dynamic::UNIT);
            m.insert("body".into(), Dynamic::UNIT);
            m.insert("error".into(), e.to_string().into());
        }
    }
    m
}

pub fn register(engine: &mut Engine, lab: &Rc<Lab>, rep: &Rc<RefCell<Reporter>>) {
    register_servers(engine, lab);
    register_etc(engine, lab);
    register_probes(engine, lab, rep);
}

fn register_servers(engine: &mut Engine, lab: &Rc<Lab>) {
    engine.register_type_with_name::<ServerRef>("Server");
    engine.register_fn("to_string", |s: &mut ServerRef| format!("server {} in {}", s.0.addr, s.0.node));
    engine.register_fn("to_debug", |s: &mut ServerRef| format!("Server({} in {})", s.0.addr, s.0.node));
    engine.register_get("addr", |s: &mut ServerRef| s.0.addr.to_string());
    engine.register_fn("requests", |s: &mut ServerRef| -> Array {
        match &s.0.kind {
            ServerKind::Http(h) => h
                .requests()
                .iter()
                .map(|r| {
                    let mut m = Map::new();
                    m.insert("client".into(), r.peer.ip().to_string().into());
                    m.insert("port".into(), (r.peer.port() as i64).into());
                    m.insert("host".into(), r.host.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
                    m.insert("path".into(), r.path.clone().into());
                    Dynamic::from_map(m)
                })
                .collect(),
            ServerKind::Dns(d) => d
                .queries()
                .iter()
                .map(|(peer, name)| {
                    let mut m = Map::new();
                    m.insert("client".into(), peer.ip().to_string().into());
                    m.insert("name".into(), name.clone().into());
                    Dynamic::from_map(m)
                })
                .collect(),
        }
    });
    // The distinct source addresses seen: what proves MASQUERADE.
    engine.register_fn("clients", |s: &mut ServerRef| -> Array {
        let mut ips: Vec<String> = match &s.0.kind {
            ServerKind::Http(h) => h.requests().iter().map(|r| r.peer.ip().to_string()).collect(),
            ServerKind::Dns(d) => d.queries().iter().map(|(p, _)| p.ip().to_string()).collect(),
        };
        ips.dedup();
        let mut seen = Vec::new();
        for ip in ips {
            if !seen.contains(&ip) {
                seen.push(ip);
            }
        }
        seen.into_iter().map(Dynamic::from).collect()
    });

    let l = lab.clone();
    let http =
        move |ctx: NativeCallContext, node: Dynamic, addr: &str, body: &str, opts: Map| -> RhaiResult<ServerRef> {
            reject_unknown(&ctx, &opts, &["status"])?;
            let node = node_arg(&ctx, &l, &node)?;
            let addr = socket_addr(&ctx, addr, 80)?;
            let status = match opts.get("status") {
                None => 200,
                Some(v) => v
                    .as_int()
                    .ok()
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or_else(|| type_error(&ctx, "an HTTP status", v))?,
            };
            to_rhai(&ctx, l.start_http_server(&node, addr, body, status)).map(ServerRef)
        };
    let h = http.clone();
    engine.register_fn("http_server", move |ctx: NativeCallContext, node: Dynamic, addr: &str, body: &str| {
        h(ctx, node, addr, body, Map::new())
    });
    engine.register_fn("http_server", http);

    let l = lab.clone();
    engine.register_fn(
        "dns_server",
        move |ctx: NativeCallContext, node: Dynamic, addr: &str, records: Map| -> RhaiResult<ServerRef> {
            let node = node_arg(&ctx, &l, &node)?;
            let addr = socket_addr(&ctx, addr, 53)?;
            let mut list = Vec::new();
            for (name, value) in &records {
                for ip in ip_list(&ctx, name, value)? {
                    list.push((name.to_string(), ip));
                }
            }
            to_rhai(&ctx, l.start_dns_server(&node, addr, list)).map(ServerRef)
        },
    );
}

fn register_etc(engine: &mut Engine, lab: &Rc<Lab>) {
    for (fname, file) in [("resolv_conf", "resolv.conf"), ("hosts_file", "hosts")] {
        let l = lab.clone();
        engine.register_fn(fname, move |ctx: NativeCallContext, node: Dynamic, text: &str| -> RhaiResult<()> {
            let node = node_arg(&ctx, &l, &node)?;
            to_rhai(&ctx, l.set_node_file(&node, file, text))
        });
        let l = lab.clone();
        engine.register_fn(fname, move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<String> {
            let node = node_arg(&ctx, &l, &node)?;
            Ok(l.node_file(&node, file).unwrap_or_default())
        });
    }
    let l = lab.clone();
    engine.register_fn("hostname", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<()> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.set_hostname(&node, name))
    });
    let l = lab.clone();
    engine.register_fn("hostname", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<String> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.hostname(&node))
    });
    let l = lab.clone();
    engine.register_fn("listening", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = node_arg(&ctx, &l, &node)?;
        let socks = to_rhai(&ctx, l.listening(&node))?;
        Ok(socks
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("proto".into(), s.proto.into());
                m.insert("local".into(), s.local.to_string().into());
                m.insert("ip".into(), s.local.ip().to_string().into());
                m.insert("port".into(), (s.local.port() as i64).into());
                Dynamic::from_map(m)
            })
            .collect())
    });
}

/// One curl attempt from `node`.
fn curl_once(
    lab: &Lab,
    node: &Node,
    url: &str,
    timeout: Duration,
) -> Result<Result<netlab_runtime::service::HttpReply, netlab_runtime::service::CurlError>, Error> {
    lab.http_get(node, url, timeout)
}

fn register_probes(engine: &mut Engine, lab: &Rc<Lab>, rep: &Rc<RefCell<Reporter>>) {
    let l = lab.clone();
    let curl = move |ctx: NativeCallContext, node: Dynamic, url: &str, opts: Map| -> RhaiResult<Map> {
        reject_unknown(&ctx, &opts, &["timeout"])?;
        let node = node_arg(&ctx, &l, &node)?;
        let timeout = l.deadline(opt_seconds(&ctx, &opts, "timeout", 3.0)?);
        let reply = to_rhai(&ctx, curl_once(&l, &node, url, timeout))?;
        if let Err(mistake) = reply.as_ref().map_err(|e| e.reasons()).err().transpose() {
            return Err(runtime_error(&ctx, mistake));
        }
        Ok(http_reply_map(&reply))
    };
    let c = curl.clone();
    engine.register_fn("curl", move |ctx: NativeCallContext, node: Dynamic, url: &str| c(ctx, node, url, Map::new()));
    engine.register_fn("curl", curl);

    // expect_http: retries until a reply with the wanted status (and body text) or the deadline.
    let (l, r) = (lab.clone(), rep.clone());
    let expect_http = move |ctx: NativeCallContext, node: Dynamic, url: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["status", "body", "timeout"])?;
        let node = node_arg(&ctx, &l, &node)?;
        let want_status = match opts.get("status") {
            None => 200,
            Some(v) => v.as_int().map_err(|_| type_error(&ctx, "an HTTP status", v))?,
        };
        let want_body = opt_str(&ctx, &opts, "body")?;
        let deadline = Instant::now() + l.deadline(opt_seconds(&ctx, &opts, "timeout", 3.0)?);
        let title = format!("{} curl {url}", node.name);
        let started = Instant::now();
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
            let reply = to_rhai(&ctx, curl_once(&l, &node, url, left))?;
            if let Err(mistake) = reply.as_ref().map_err(|e| e.reasons()).err().transpose() {
                return Err(runtime_error(&ctx, mistake));
            }
            let problem = match &reply {
                Ok(rep) if rep.status as i64 != want_status => {
                    format!("status {} (expected {want_status})", rep.status)
                }
                Ok(rep) => match &want_body {
                    Some(b) if !rep.body.contains(b.as_str()) => {
                        format!("the body does not contain {b:?}: {:?}", short(&rep.body))
                    }
                    _ => {
                        let shown = short(&rep.body);
                        r.borrow_mut().check_passed(&format!(
                            "{title}: {} {shown:?} after {}",
                            rep.status,
                            fmt_duration(started.elapsed())
                        ));
                        return Ok(());
                    }
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let hint = curl_hint(&l, &node, &problem);
                return Err(check_failure(&ctx, &r, title, problem, hint));
            }
            l.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
        }
    };
    let e = expect_http.clone();
    engine.register_fn("expect_http", move |ctx: NativeCallContext, node: Dynamic, url: &str| {
        e(ctx, node, url, Map::new())
    });
    engine.register_fn("expect_http", expect_http);

    let (l, r) = (lab.clone(), rep.clone());
    let expect_no_http = move |ctx: NativeCallContext, node: Dynamic, url: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["window", "error"])?;
        let node = node_arg(&ctx, &l, &node)?;
        let window = l.deadline(opt_seconds(&ctx, &opts, "window", NEGATIVE_HTTP_WINDOW)?);
        let wanted = super::checks::wanted_reason(&ctx, &opts)?;
        let title = format!("{} cannot curl {url}", node.name);
        to_rhai(&ctx, l.clear_probe_leftovers())?;
        match to_rhai(&ctx, curl_once(&l, &node, url, window))? {
            Err(e) => nothing_got_through(&ctx, &r, title, &e, e.reasons(), wanted),
            Ok(rep) => Err(check_failure(
                &ctx,
                &r,
                title,
                format!("got an answer: {} {:?}", rep.status, short(&rep.body)),
                Some("something already lets this through; check the steps before this one".into()),
            )),
        }
    };
    let e = expect_no_http.clone();
    engine.register_fn("expect_no_http", move |ctx: NativeCallContext, node: Dynamic, url: &str| {
        e(ctx, node, url, Map::new())
    });
    engine.register_fn("expect_no_http", expect_no_http);

    let l = lab.clone();
    engine.register_fn("resolve", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<Array> {
        let node = node_arg(&ctx, &l, &node)?;
        let found = to_rhai(&ctx, l.resolve(&node, name, l.deadline(2.0)))?;
        if let Err(mistake) = found.as_ref().map_err(|e| e.reasons()).err().transpose() {
            return Err(runtime_error(&ctx, mistake));
        }
        Ok(found.unwrap_or_default().iter().map(|ip| Dynamic::from(ip.to_string())).collect())
    });
    let (l, r) = (lab.clone(), rep.clone());
    engine.register_fn("expect_resolve", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<()> {
        let node = node_arg(&ctx, &l, &node)?;
        match to_rhai(&ctx, l.resolve(&node, name, l.deadline(2.0)))? {
            Ok(ips) => {
                let ips: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
                r.borrow_mut().check_passed(&format!("{} resolves {name}: {}", node.name, ips.join(", ")));
                Ok(())
            }
            Err(e) => {
                e.reasons().map_err(|mistake| runtime_error(&ctx, mistake))?;
                let hint = Some(format!("the node's resolv.conf decides: see resolv_conf({})", node.name));
                Err(check_failure(&ctx, &r, format!("{} resolves {name}", node.name), e.to_string(), hint))
            }
        }
    });
    let (l, r) = (lab.clone(), rep.clone());
    let expect_no_resolve = move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["window", "error"])?;
        let node = node_arg(&ctx, &l, &node)?;
        let window = l.deadline(opt_seconds(&ctx, &opts, "window", NEGATIVE_HTTP_WINDOW)?);
        let wanted = super::checks::wanted_reason(&ctx, &opts)?;
        let title = format!("{} cannot resolve {name}", node.name);
        to_rhai(&ctx, l.clear_probe_leftovers())?;
        match to_rhai(&ctx, l.resolve(&node, name, window))? {
            Err(e) => nothing_got_through(&ctx, &r, title, &e, e.reasons(), wanted),
            Ok(ips) => Err(check_failure(
                &ctx,
                &r,
                title,
                format!("it resolved to {}", ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
                None,
            )),
        }
    };
    let e = expect_no_resolve.clone();
    engine.register_fn("expect_no_resolve", move |ctx: NativeCallContext, node: Dynamic, name: &str| {
        e(ctx, node, name, Map::new())
    });
    engine.register_fn("expect_no_resolve", expect_no_resolve);
}

/// A negative probe got no answer: the check passes, unless the lab required a
/// reason and this was not it, or the failure was the lab's own mistake (a malformed
/// URL or name: a script error, never a pass).
fn nothing_got_through(
    ctx: &NativeCallContext,
    rep: &RefCell<Reporter>,
    title: String,
    error: &dyn std::fmt::Display,
    reasons: Result<Vec<Reason>, String>,
    wanted: Option<Wanted>,
) -> RhaiResult<()> {
    let reasons = reasons.map_err(|mistake| runtime_error(ctx, mistake))?;
    if let Some(w) = wanted.filter(|w| !w.satisfied_by(&reasons)) {
        let detail = format!("nothing got through, but not for the reason {w}: {error}");
        return Err(check_failure(ctx, rep, title, detail, None));
    }
    rep.borrow_mut().check_passed(&format!("{title}: {error}"));
    Ok(())
}

fn short(body: &str) -> String {
    let line = body.trim();
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_string()
    }
}

/// Why a curl likely failed.
fn curl_hint(lab: &Lab, node: &Node, problem: &str) -> Option<String> {
    if problem.starts_with("Could not resolve") {
        let conf = lab.node_file(node, "resolv.conf").unwrap_or_default();
        if !conf.lines().any(|l| l.trim_start().starts_with("nameserver")) {
            return Some(format!(
                "{} has no nameserver: set one with resolv_conf({}, \"nameserver IP\")",
                node.name, node.name
            ));
        }
        return Some(format!("{}'s nameserver did not answer the name; is it reachable (route, NAT)?", node.name));
    }
    if problem.contains("unreachable") {
        return Some(format!("{} has no route there: add a default route", node.name));
    }
    if problem.contains("timed out") {
        return Some("packets go out but nothing comes back: is there NAT (masquerade) or a route back?".into());
    }
    if problem.contains("refused") {
        return Some("the address answers but nothing listens on that port (or DNAT points elsewhere)".into());
    }
    None
}
