//! Bindings for services in nodes and the probes that use them: http_server(),
//! dns_server(), curl(), resolve(), listening(), the per-node /etc files and
//! hostname, and their checks expect_http(), expect_no_http(), expect_resolve().

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use netlab_runtime::backend::{Applied, ServerLog};
use netlab_runtime::model::{EtcFile, Expect, Op, Probe, ServerSpec};
use netlab_runtime::outcome::{Reason, Wanted};
use netlab_runtime::{Error, NodeName};
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::session::Session;
use super::values::{
    check_failure, opt_seconds, opt_str, reject_unknown, runtime_error, to_rhai, type_error, RhaiResult,
};
use crate::report::{fmt_duration, Reporter};

/// How long expect_no_http / expect_no_resolve wait by default: between a lab's
/// namespaces a SYN or a query is answered in microseconds, and neighbour
/// resolution takes at most 30 ms (see Lab::tune_neighbours); a connection or a
/// query that gets no answer in this time gets none.
const NEGATIVE_HTTP_WINDOW: f64 = 0.1;

/// A server handle as scripts see it (type name "Server").
#[derive(Clone)]
pub struct ServerRef(pub Rc<dyn ServerLog>);

/// The `status` option: an HTTP status code (100 to 999, as HTTP allows), 200 by default.
fn http_status(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<u16> {
    let status = super::limits::int_in(ctx, opts, "status", 100..=999)?.unwrap_or(200);
    Ok(u16::try_from(status).unwrap_or(200))
}

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
            reason: match text.rsplit_once(':').map(|(_, port)| port.parse::<u64>()) {
                Some(Ok(port)) if port > 65535 => "ports are 1 to 65535".into(),
                _ => "not IP:PORT".into(),
            },
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
            to_rhai(ctx, netlab_runtime::backend::kernel::addr::parse_ip(&text))
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

pub fn register(engine: &mut Engine, s: &Rc<Session>, rep: &Rc<RefCell<Reporter>>) {
    register_servers(engine, s);
    register_etc(engine, s);
    register_probes(engine, s, rep);
}

fn register_servers(engine: &mut Engine, s: &Rc<Session>) {
    engine.register_type_with_name::<ServerRef>("Server");
    engine.register_fn("to_string", |s: &mut ServerRef| format!("server {} in {}", s.0.addr(), s.0.node()));
    engine.register_fn("to_debug", |s: &mut ServerRef| format!("Server({} in {})", s.0.addr(), s.0.node()));
    engine.register_get("addr", |s: &mut ServerRef| s.0.addr().to_string());
    engine.register_fn("requests", |s: &mut ServerRef| -> Array {
        let http = s.0.requests().into_iter().map(|r| {
            let mut m = Map::new();
            m.insert("client".into(), r.peer.ip().to_string().into());
            m.insert("port".into(), (r.peer.port() as i64).into());
            m.insert("host".into(), r.host.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
            m.insert("path".into(), r.path.clone().into());
            Dynamic::from_map(m)
        });
        let dns = s.0.queries().into_iter().map(|(peer, name)| {
            let mut m = Map::new();
            m.insert("client".into(), peer.ip().to_string().into());
            m.insert("name".into(), name.into());
            Dynamic::from_map(m)
        });
        let udp = s.0.datagrams().into_iter().map(|peer| {
            let mut m = Map::new();
            m.insert("client".into(), peer.ip().to_string().into());
            m.insert("port".into(), (peer.port() as i64).into());
            Dynamic::from_map(m)
        });
        http.chain(dns).chain(udp).collect()
    });
    // The distinct source addresses seen: what proves MASQUERADE.
    engine.register_fn("clients", |s: &mut ServerRef| -> Array {
        let mut ips: Vec<String> = s.0.requests().iter().map(|r| r.peer.ip().to_string()).collect();
        ips.extend(s.0.queries().iter().map(|(p, _)| p.ip().to_string()));
        ips.extend(s.0.datagrams().iter().map(|p| p.ip().to_string()));
        ips.dedup();
        let mut seen = Vec::new();
        for ip in ips {
            if !seen.contains(&ip) {
                seen.push(ip);
            }
        }
        seen.into_iter().map(Dynamic::from).collect()
    });

    let ss = s.clone();
    let http =
        move |ctx: NativeCallContext, node: Dynamic, addr: &str, body: &str, opts: Map| -> RhaiResult<ServerRef> {
            reject_unknown(&ctx, &opts, &["status"])?;
            let node = ss.node(&ctx, &node)?;
            let addr = socket_addr(&ctx, addr, 80)?;
            let status = http_status(&ctx, &opts)?;
            start_server(&ss, &ctx, node, ServerSpec::Http { addr, body: body.to_string(), status })
        };
    let h = http.clone();
    engine.register_fn("http_server", move |ctx: NativeCallContext, node: Dynamic, addr: &str, body: &str| {
        h(ctx, node, addr, body, Map::new())
    });
    engine.register_fn("http_server", http);

    let ss = s.clone();
    engine.register_fn(
        "dns_server",
        move |ctx: NativeCallContext, node: Dynamic, addr: &str, records: Map| -> RhaiResult<ServerRef> {
            let node = ss.node(&ctx, &node)?;
            let addr = socket_addr(&ctx, addr, 53)?;
            let mut list = Vec::new();
            for (name, value) in &records {
                for ip in ip_list(&ctx, name, value)? {
                    list.push((name.to_string(), ip));
                }
            }
            start_server(&ss, &ctx, node, ServerSpec::Dns { addr, records: list })
        },
    );

    // udp_server(node, "ip:port"): the echo service (port 7 when none is given).
    let ss = s.clone();
    engine.register_fn(
        "udp_server",
        move |ctx: NativeCallContext, node: Dynamic, addr: &str| -> RhaiResult<ServerRef> {
            let node = ss.node(&ctx, &node)?;
            let addr = socket_addr(&ctx, addr, 7)?;
            start_server(&ss, &ctx, node, ServerSpec::UdpEcho { addr })
        },
    );
}

fn start_server(ss: &Session, ctx: &NativeCallContext, node: NodeName, server: ServerSpec) -> RhaiResult<ServerRef> {
    match ss.apply(ctx, Op::StartServer { node, server })? {
        Applied::Server(log) => Ok(ServerRef(log)),
        Applied::Done => Err(runtime_error(ctx, "the backend started no server".into())),
    }
}

fn register_etc(engine: &mut Engine, s: &Rc<Session>) {
    for (fname, file) in [("resolv_conf", EtcFile::ResolvConf), ("hosts_file", EtcFile::Hosts)] {
        let ss = s.clone();
        engine.register_fn(fname, move |ctx: NativeCallContext, node: Dynamic, text: &str| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            ss.apply(&ctx, Op::WriteFile { node, file, text: text.to_string() }).map(|_| ())
        });
        let ss = s.clone();
        engine.register_fn(fname, move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<String> {
            let node = ss.node(&ctx, &node)?;
            Ok(to_rhai(&ctx, ss.backend().file(&node, file))?.unwrap_or_default())
        });
    }
    let ss = s.clone();
    engine.register_fn("hostname", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        to_rhai(&ctx, netlab_runtime::names::check_hostname(name))?;
        ss.apply(&ctx, Op::SetHostname { node, name: name.to_string() }).map(|_| ())
    });
    let ss = s.clone();
    engine.register_fn("hostname", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<String> {
        let node = ss.node(&ctx, &node)?;
        to_rhai(&ctx, ss.backend().hostname(&node))
    });
    let ss = s.clone();
    engine.register_fn("listening", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        let socks = to_rhai(&ctx, ss.backend().listening(&node))?;
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

/// A URL the lab wrote, checked before any probe: a malformed one is the lab's
/// mistake (exit 2), also where probes are only planned.
fn check_url(ctx: &NativeCallContext, url: &str) -> RhaiResult<()> {
    match netlab_runtime::service::curl::parse_url(url) {
        Ok(_) => Ok(()),
        Err(e) => Err(runtime_error(ctx, e.reasons().err().unwrap_or_else(|| e.to_string()))),
    }
}

/// "10.0.0.2:80" or "[fd00::2]:80", the port required.
fn target_addr(ctx: &NativeCallContext, target: &str) -> RhaiResult<std::net::SocketAddr> {
    target.parse().map_err(|_| {
        runtime_error(ctx, format!("{target:?} is not an address and port: \"10.0.0.2:80\" or \"[fd00::2]:80\""))
    })
}

fn check_name(ctx: &NativeCallContext, name: &str) -> RhaiResult<()> {
    netlab_runtime::service::curl::check_host_name(name)
        .map_err(|reason| runtime_error(ctx, format!("{name:?} is not a valid host name: {reason}")))
}

fn register_probes(engine: &mut Engine, s: &Rc<Session>, rep: &Rc<RefCell<Reporter>>) {
    let ss = s.clone();
    let curl = move |ctx: NativeCallContext, node: Dynamic, url: &str, opts: Map| -> RhaiResult<Map> {
        reject_unknown(&ctx, &opts, &["timeout"])?;
        let node = ss.node(&ctx, &node)?;
        let timeout = ss.deadline(opt_seconds(&ctx, &opts, "timeout", 3.0)?);
        check_url(&ctx, url)?;
        ss.probe(&ctx, Probe::Http { node: node.clone(), url: url.to_string(), expect: None, status: 200, body: None });
        let reply = to_rhai(&ctx, ss.backend().http_get(&node, url, timeout))?;
        if let Err(mistake) = reply.as_ref().map_err(|e| e.reasons()).err().transpose() {
            return Err(runtime_error(&ctx, mistake));
        }
        Ok(http_reply_map(&reply))
    };
    let c = curl.clone();
    engine.register_fn("curl", move |ctx: NativeCallContext, node: Dynamic, url: &str| c(ctx, node, url, Map::new()));
    engine.register_fn("curl", curl);

    // expect_http: retries until a reply with the wanted status (and body text) or the deadline.
    let (ss, r) = (s.clone(), rep.clone());
    let expect_http = move |ctx: NativeCallContext, node: Dynamic, url: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["status", "body", "timeout"])?;
        let node = ss.node(&ctx, &node)?;
        let want_status = http_status(&ctx, &opts)?;
        let want_body = opt_str(&ctx, &opts, "body")?;
        let deadline = Instant::now() + ss.deadline(opt_seconds(&ctx, &opts, "timeout", 3.0)?);
        check_url(&ctx, url)?;
        let title = format!("{node} curl {url}");
        ss.probe(
            &ctx,
            Probe::Http {
                node: node.clone(),
                url: url.to_string(),
                expect: Some(Expect::Answer),
                status: want_status,
                body: want_body.clone(),
            },
        );
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&title);
            return Ok(());
        }
        let started = Instant::now();
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
            let reply = to_rhai(&ctx, ss.backend().http_get(&node, url, left))?;
            if let Err(mistake) = reply.as_ref().map_err(|e| e.reasons()).err().transpose() {
                return Err(runtime_error(&ctx, mistake));
            }
            let problem = match &reply {
                Ok(rep) if rep.status != want_status => {
                    format!("status {} (expected {want_status})", rep.status)
                }
                Ok(rep) => match &want_body {
                    Some(b) if !rep.body.contains(b.as_str()) => {
                        format!("the body does not contain {b:?}: {:?}", short(&rep.body))
                    }
                    _ => {
                        let shown = short(&rep.body);
                        r.borrow_mut().check_passed(
                            &format!("{title}: {} {shown:?} after {}", rep.status, fmt_duration(started.elapsed())),
                            super::values::line(&ctx),
                        );
                        return Ok(());
                    }
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let hint = curl_hint(&ss, &node, &problem);
                return Err(check_failure(&ctx, &r, title, problem, hint));
            }
            ss.backend().sleep(Duration::from_millis(100));
        }
    };
    let e = expect_http.clone();
    engine.register_fn("expect_http", move |ctx: NativeCallContext, node: Dynamic, url: &str| {
        e(ctx, node, url, Map::new())
    });
    engine.register_fn("expect_http", expect_http);

    let (ss, r) = (s.clone(), rep.clone());
    let expect_no_http = move |ctx: NativeCallContext, node: Dynamic, url: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["window", "error"])?;
        let node = ss.node(&ctx, &node)?;
        let window = ss.window(&ctx, opt_seconds(&ctx, &opts, "window", NEGATIVE_HTTP_WINDOW)?)?;
        let wanted = super::checks::wanted_reason(&ctx, &opts)?;
        check_url(&ctx, url)?;
        let title = format!("{node} cannot curl {url}");
        let probe = Probe::Http {
            node: node.clone(),
            url: url.to_string(),
            expect: Some(Expect::NoAnswer),
            status: 200,
            body: None,
        };
        ss.probe(&ctx, probe);
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&title);
            return Ok(());
        }
        to_rhai(&ctx, ss.backend().clear_probe_leftovers())?;
        match to_rhai(&ctx, ss.backend().http_get(&node, url, window))? {
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

    // expect_tcp(node, "ip:port" [, #{timeout}]): a TCP handshake succeeds (retried
    // until the deadline, like expect_http); the connection is closed at once.
    let (ss, r) = (s.clone(), rep.clone());
    let expect_tcp = move |ctx: NativeCallContext, node: Dynamic, target: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["timeout"])?;
        let node = ss.node(&ctx, &node)?;
        let addr = target_addr(&ctx, target)?;
        let deadline = Instant::now() + ss.deadline(opt_seconds(&ctx, &opts, "timeout", 3.0)?);
        let title = format!("{node} connects to {addr}");
        ss.probe(&ctx, Probe::Tcp { node: node.clone(), addr, expect: Some(Expect::Answer) });
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&title);
            return Ok(());
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
            match to_rhai(&ctx, ss.backend().tcp_connect(&node, addr, left))? {
                Ok(took) => {
                    let title = format!("{title}: handshake in {}", fmt_duration(took));
                    r.borrow_mut().check_passed(&title, super::values::line(&ctx));
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(check_failure(&ctx, &r, title, e.to_string(), None));
                }
                Err(_) => ss.backend().sleep(Duration::from_millis(100)),
            }
        }
    };
    let e = expect_tcp.clone();
    engine.register_fn("expect_tcp", move |ctx: NativeCallContext, node: Dynamic, target: &str| {
        e(ctx, node, target, Map::new())
    });
    engine.register_fn("expect_tcp", expect_tcp);

    // expect_no_tcp(node, "ip:port" [, #{window, error}]): no handshake within the
    // window, and (with error) for that reason: "refused", "silence", ...
    let (ss, r) = (s.clone(), rep.clone());
    let expect_no_tcp = move |ctx: NativeCallContext, node: Dynamic, target: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["window", "error"])?;
        let node = ss.node(&ctx, &node)?;
        let addr = target_addr(&ctx, target)?;
        let window = ss.window(&ctx, opt_seconds(&ctx, &opts, "window", NEGATIVE_HTTP_WINDOW)?)?;
        let wanted = super::checks::wanted_reason(&ctx, &opts)?;
        let title = format!("{node} cannot connect to {addr}");
        ss.probe(&ctx, Probe::Tcp { node: node.clone(), addr, expect: Some(Expect::NoAnswer) });
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&title);
            return Ok(());
        }
        to_rhai(&ctx, ss.backend().clear_probe_leftovers())?;
        match to_rhai(&ctx, ss.backend().tcp_connect(&node, addr, window))? {
            Err(e) => nothing_got_through(&ctx, &r, title, &e, e.reasons(), wanted),
            Ok(took) => Err(check_failure(
                &ctx,
                &r,
                title,
                format!("the handshake succeeded in {}", fmt_duration(took)),
                Some("something already lets this through; check the steps before this one".into()),
            )),
        }
    };
    let e = expect_no_tcp.clone();
    engine.register_fn("expect_no_tcp", move |ctx: NativeCallContext, node: Dynamic, target: &str| {
        e(ctx, node, target, Map::new())
    });
    engine.register_fn("expect_no_tcp", expect_no_tcp);

    // expect_udp(node, "ip:port" [, #{timeout}]): a datagram to a UDP echo server
    // comes back (sent every 100 ms until the deadline: UDP has no retransmission).
    let (ss, r) = (s.clone(), rep.clone());
    let expect_udp = move |ctx: NativeCallContext, node: Dynamic, target: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["timeout"])?;
        let node = ss.node(&ctx, &node)?;
        let addr = target_addr(&ctx, target)?;
        let timeout = ss.deadline(opt_seconds(&ctx, &opts, "timeout", 3.0)?);
        let title = format!("{node} gets an echo from {addr}/udp");
        ss.probe(&ctx, Probe::Udp { node: node.clone(), addr, expect: Some(Expect::Answer) });
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&title);
            return Ok(());
        }
        match to_rhai(&ctx, ss.backend().udp_exchange(&node, addr, timeout))? {
            Ok(took) => {
                r.borrow_mut()
                    .check_passed(&format!("{title}: after {}", fmt_duration(took)), super::values::line(&ctx));
                Ok(())
            }
            Err(e) => {
                let hint = matches!(e, netlab_runtime::service::UdpError::Refused { .. })
                    .then(|| format!("nothing listens on {addr}/udp: start udp_server() there"));
                Err(check_failure(&ctx, &r, title, e.to_string(), hint))
            }
        }
    };
    let e = expect_udp.clone();
    engine.register_fn("expect_udp", move |ctx: NativeCallContext, node: Dynamic, target: &str| {
        e(ctx, node, target, Map::new())
    });
    engine.register_fn("expect_udp", expect_udp);

    // expect_no_udp(node, "ip:port" [, #{window, error}]): no echo within the window,
    // and (with error) for that reason: "refused" (ICMP port unreachable), "silence", ...
    let (ss, r) = (s.clone(), rep.clone());
    let expect_no_udp = move |ctx: NativeCallContext, node: Dynamic, target: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["window", "error"])?;
        let node = ss.node(&ctx, &node)?;
        let addr = target_addr(&ctx, target)?;
        let window = ss.window(&ctx, opt_seconds(&ctx, &opts, "window", NEGATIVE_HTTP_WINDOW)?)?;
        let wanted = super::checks::wanted_reason(&ctx, &opts)?;
        let title = format!("{node} gets no echo from {addr}/udp");
        ss.probe(&ctx, Probe::Udp { node: node.clone(), addr, expect: Some(Expect::NoAnswer) });
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&title);
            return Ok(());
        }
        to_rhai(&ctx, ss.backend().clear_probe_leftovers())?;
        match to_rhai(&ctx, ss.backend().udp_exchange(&node, addr, window))? {
            Err(e) => nothing_got_through(&ctx, &r, title, &e, Ok(e.reasons()), wanted),
            Ok(took) => Err(check_failure(
                &ctx,
                &r,
                title,
                format!("the echo came back after {}", fmt_duration(took)),
                Some("something already lets this through; check the steps before this one".into()),
            )),
        }
    };
    let e = expect_no_udp.clone();
    engine.register_fn("expect_no_udp", move |ctx: NativeCallContext, node: Dynamic, target: &str| {
        e(ctx, node, target, Map::new())
    });
    engine.register_fn("expect_no_udp", expect_no_udp);

    let ss = s.clone();
    engine.register_fn("resolve", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        check_name(&ctx, name)?;
        ss.probe(&ctx, Probe::Resolve { node: node.clone(), name: name.to_string(), expect: None });
        let found = to_rhai(&ctx, ss.backend().resolve(&node, name, ss.deadline(2.0)))?;
        if let Err(mistake) = found.as_ref().map_err(|e| e.reasons()).err().transpose() {
            return Err(runtime_error(&ctx, mistake));
        }
        Ok(found.unwrap_or_default().iter().map(|ip| Dynamic::from(ip.to_string())).collect())
    });
    let (ss, r) = (s.clone(), rep.clone());
    engine.register_fn("expect_resolve", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        check_name(&ctx, name)?;
        let title = format!("{node} resolves {name}");
        ss.probe(&ctx, Probe::Resolve { node: node.clone(), name: name.to_string(), expect: Some(Expect::Answer) });
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&title);
            return Ok(());
        }
        match to_rhai(&ctx, ss.backend().resolve(&node, name, ss.deadline(2.0)))? {
            Ok(ips) => {
                let ips: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
                r.borrow_mut().check_passed(&format!("{title}: {}", ips.join(", ")), super::values::line(&ctx));
                Ok(())
            }
            Err(e) => {
                e.reasons().map_err(|mistake| runtime_error(&ctx, mistake))?;
                let hint = Some(format!("the node's resolv.conf decides: see resolv_conf({node})"));
                Err(check_failure(&ctx, &r, title, e.to_string(), hint))
            }
        }
    });
    let (ss, r) = (s.clone(), rep.clone());
    let expect_no_resolve = move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["window", "error"])?;
        let node = ss.node(&ctx, &node)?;
        let window = ss.window(&ctx, opt_seconds(&ctx, &opts, "window", NEGATIVE_HTTP_WINDOW)?)?;
        let wanted = super::checks::wanted_reason(&ctx, &opts)?;
        check_name(&ctx, name)?;
        let title = format!("{node} cannot resolve {name}");
        ss.probe(&ctx, Probe::Resolve { node: node.clone(), name: name.to_string(), expect: Some(Expect::NoAnswer) });
        if !ss.evaluates() {
            r.borrow_mut().check_planned(&title);
            return Ok(());
        }
        to_rhai(&ctx, ss.backend().clear_probe_leftovers())?;
        match to_rhai(&ctx, ss.backend().resolve(&node, name, window))? {
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
    rep.borrow_mut().check_passed(&format!("{title}: {error}"), super::values::line(ctx));
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
fn curl_hint(ss: &Session, node: &NodeName, problem: &str) -> Option<String> {
    if problem.starts_with("Could not resolve") {
        let conf = ss.backend().file(node, EtcFile::ResolvConf).ok().flatten().unwrap_or_default();
        if !conf.lines().any(|l| l.trim_start().starts_with("nameserver")) {
            return Some(format!("{} has no nameserver: set one with resolv_conf({}, \"nameserver IP\")", node, node));
        }
        return Some(format!("{node}'s nameserver did not answer the name; is it reachable (route, NAT)?"));
    }
    if problem.contains("unreachable") {
        return Some(format!("{node} has no route there: add a default route"));
    }
    if problem.contains("timed out") {
        return Some("packets go out but nothing comes back: is there NAT (masquerade) or a route back?".into());
    }
    if problem.contains("refused") {
        return Some("the address answers but nothing listens on that port (or DNAT points elsewhere)".into());
    }
    None
}
