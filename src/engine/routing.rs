//! Bindings for routes and policy routing: `route()` with its options and typed
//! routes, `rule()`, and reading tables and rules back. Thin: parse the arguments
//! into an op or a query, hand it to the session.

use std::rc::Rc;

use netlab_runtime::backend::kernel::addr::{parse_cidr, parse_ip, parse_prefix};
use netlab_runtime::model::{NextHop, Op, PathHop, RouteOpts, RuleSpec, MAIN_TABLE};
use netlab_runtime::LinkName;
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::net::dev_name;
use super::session::Session;
use super::values::{opt_str, reject_unknown, runtime_error, to_rhai, type_error, RhaiResult};

fn link_name(ctx: &NativeCallContext, name: &str) -> RhaiResult<LinkName> {
    to_rhai(ctx, LinkName::new(name))
}

/// A table by number (1 to 2^32 - 1) or name (main, default, local).
fn table(ctx: &NativeCallContext, value: &Dynamic) -> RhaiResult<u32> {
    if let Ok(n) = value.as_int() {
        return u32::try_from(n)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| runtime_error(ctx, format!("a routing table is 1 to 4294967295, not {n}")));
    }
    match value.clone().into_string().as_deref() {
        Ok("main") => Ok(MAIN_TABLE),
        Ok("default") => Ok(253),
        Ok("local") => Ok(255),
        Ok(other) => {
            Err(runtime_error(ctx, format!("unknown table {other:?}: a number, \"main\", \"default\" or \"local\"")))
        }
        Err(_) => Err(type_error(ctx, "a table number or name", value)),
    }
}

fn opt_u32(ctx: &NativeCallContext, opts: &Map, key: &str) -> RhaiResult<Option<u32>> {
    let Some(v) = opts.get(key) else { return Ok(None) };
    let n = v.as_int().map_err(|_| type_error(ctx, &format!("an integer for {key}"), v))?;
    u32::try_from(n).map(Some).map_err(|_| runtime_error(ctx, format!("{key} is 0 to 4294967295, not {n}")))
}

fn route_opts(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<RouteOpts> {
    Ok(RouteOpts {
        metric: opt_u32(ctx, opts, "metric")?,
        table: opts.get("table").map(|t| table(ctx, t)).transpose()?,
        src: opt_str(ctx, opts, "src")?.map(|s| to_rhai(ctx, parse_ip(&s))).transpose()?,
        dev: opt_str(ctx, opts, "dev")?.map(|d| link_name(ctx, &d)).transpose()?,
        onlink: match opts.get("onlink") {
            None => false,
            Some(v) => v.as_bool().map_err(|_| type_error(ctx, "true or false for onlink", v))?,
        },
    })
}

/// One path of a multipath route: "GW", or #{via: "GW", dev: "LINK", weight: 1..256}.
fn path_hop(ctx: &NativeCallContext, path: &Dynamic) -> RhaiResult<PathHop> {
    if let Ok(gw) = path.clone().into_string() {
        return Ok(PathHop { gateway: Some(to_rhai(ctx, parse_ip(&gw))?), dev: None, weight: 1 });
    }
    let Some(map) = path.read_lock::<Map>().map(|m| m.clone()) else {
        return Err(type_error(ctx, "a gateway \"10.0.0.1\" or a path #{via, dev, weight}", path));
    };
    reject_unknown(ctx, &map, &["via", "dev", "weight"])?;
    let gateway = opt_str(ctx, &map, "via")?.map(|g| to_rhai(ctx, parse_ip(&g))).transpose()?;
    let dev = opt_str(ctx, &map, "dev")?.map(|d| link_name(ctx, &d)).transpose()?;
    if gateway.is_none() && dev.is_none() {
        return Err(runtime_error(
            ctx,
            "a path goes via a gateway or onto a link: #{via: \"10.0.0.1\"} or #{dev: \"eth0\"}".into(),
        ));
    }
    let weight = match map.get("weight") {
        None => 1,
        Some(w) => {
            let n = w.as_int().map_err(|_| type_error(ctx, "an integer for weight", w))?;
            u16::try_from(n)
                .ok()
                .filter(|w| (1..=256).contains(w))
                .ok_or_else(|| runtime_error(ctx, format!("a path's weight is 1 to 256, not {n}")))?
        }
    };
    Ok(PathHop { gateway, dev, weight })
}

pub fn register(engine: &mut Engine, s: &Rc<Session>) {
    // route(node, DEST, "10.0.0.1" | "veth0" [, #{metric, table, src, dev, onlink}])
    let ss = s.clone();
    let route = move |ctx: NativeCallContext, node: Dynamic, dest: &str, via: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["metric", "table", "src", "dev", "onlink"])?;
        let node = ss.node(&ctx, &node)?;
        let dest = to_rhai(&ctx, parse_prefix(dest))?;
        let hop = match via.parse() {
            Ok(ip) => NextHop::Gateway(ip),
            // "10.0.0.254/24" is a gateway written with a prefix, not a link's name.
            Err(_) if parse_cidr(via).is_ok() => NextHop::Gateway(to_rhai(&ctx, parse_ip(via))?),
            Err(_) => NextHop::Device(link_name(&ctx, via)?),
        };
        let opts = route_opts(&ctx, &opts)?;
        if matches!(hop, NextHop::Device(_)) && (opts.dev.is_some() || opts.onlink) {
            return Err(runtime_error(
                &ctx,
                "dev and onlink go with a gateway: route(node, DEST, \"10.0.0.1\", #{dev: \"eth0\", onlink: true})"
                    .into(),
            ));
        }
        if opts.onlink && opts.dev.is_none() {
            return Err(runtime_error(
                &ctx,
                "onlink needs the link the gateway is on: #{dev: \"eth0\", onlink: true}".into(),
            ));
        }
        ss.apply(&ctx, Op::AddRoute { node, dest, hop, opts }).map(|_| ())
    };
    let r = route.clone();
    engine.register_fn("route", move |ctx: NativeCallContext, node: Dynamic, dest: &str, via: &str| {
        r(ctx, node, dest, via, Map::new())
    });
    engine.register_fn("route", route);

    // route(node, DEST, ["GW1", #{via: "GW2", dev: "eth1", weight: 2}, ...] [, #{metric, table, src}]):
    // multipath, `ip route add DEST nexthop via GW1 nexthop via GW2 weight 2`.
    let ss = s.clone();
    let multipath =
        move |ctx: NativeCallContext, node: Dynamic, dest: &str, paths: Array, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &["metric", "table", "src"])?;
            let node = ss.node(&ctx, &node)?;
            let dest = to_rhai(&ctx, parse_prefix(dest))?;
            if paths.len() < 2 {
                return Err(runtime_error(
                    &ctx,
                    format!(
                        "a multipath route has two paths or more, not {}: for one, route(node, DEST, \"GATEWAY\")",
                        paths.len()
                    ),
                ));
            }
            let hops = paths.iter().map(|p| path_hop(&ctx, p)).collect::<RhaiResult<Vec<PathHop>>>()?;
            let families: Vec<bool> = hops.iter().filter_map(|h| h.gateway.map(|g| g.is_ipv6())).collect();
            if families.windows(2).any(|w| w[0] != w[1]) {
                return Err(runtime_error(&ctx, "the paths' gateways are of different IP versions".into()));
            }
            let opts = route_opts(&ctx, &opts)?;
            ss.apply(&ctx, Op::AddRoute { node, dest, hop: NextHop::Multipath(hops), opts }).map(|_| ())
        };
    let m = multipath.clone();
    engine.register_fn("route", move |ctx: NativeCallContext, node: Dynamic, dest: &str, paths: Array| {
        m(ctx, node, dest, paths, Map::new())
    });
    engine.register_fn("route", multipath);

    // route(node, DEST, #{type: "blackhole" | "unreachable" | "prohibit", metric, table})
    let ss = s.clone();
    engine.register_fn("route", move |ctx: NativeCallContext, node: Dynamic, dest: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["type", "metric", "table", "src"])?;
        let node = ss.node(&ctx, &node)?;
        let dest = to_rhai(&ctx, parse_prefix(dest))?;
        let hop = match opt_str(&ctx, &opts, "type")?.as_deref() {
            Some("blackhole") => NextHop::Blackhole,
            Some("unreachable") => NextHop::Unreachable,
            Some("prohibit") => NextHop::Prohibit,
            Some(other) => {
                return Err(runtime_error(&ctx, format!("route type {other:?}: \"blackhole\", \"unreachable\" or \"prohibit\" (a gateway or link is the third argument)")))
            }
            None => {
                return Err(runtime_error(&ctx, "a route goes somewhere: route(node, DEST, \"GATEWAY\" | \"LINK\"), or #{type: \"blackhole\" | \"unreachable\" | \"prohibit\"}".into()))
            }
        };
        let mut rest = opts.clone();
        rest.remove("type");
        let opts = route_opts(&ctx, &rest)?;
        ss.apply(&ctx, Op::AddRoute { node, dest, hop, opts }).map(|_| ())
    });

    // del_route(node, DEST [, #{table}])
    let ss = s.clone();
    let del_route = move |ctx: NativeCallContext, node: Dynamic, dest: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["table"])?;
        let node = ss.node(&ctx, &node)?;
        let dest = to_rhai(&ctx, parse_prefix(dest))?;
        let table = opts.get("table").map(|t| table(&ctx, t)).transpose()?;
        ss.apply(&ctx, Op::DelRoute { node, dest, table }).map(|_| ())
    };
    let d = del_route.clone();
    engine.register_fn("del_route", move |ctx: NativeCallContext, node: Dynamic, dest: &str| {
        d(ctx, node, dest, Map::new())
    });
    engine.register_fn("del_route", del_route);

    // rule(node, #{...}) and del_rule(node, #{...})
    for delete in [false, true] {
        let ss = s.clone();
        engine.register_fn(
            if delete { "del_rule" } else { "rule" },
            move |ctx: NativeCallContext, node: Dynamic, opts: Map| -> RhaiResult<()> {
                reject_unknown(&ctx, &opts, &["from", "to", "iif", "oif", "fwmark", "priority", "table"])?;
                let node = ss.node(&ctx, &node)?;
                let prefix = |key: &str| -> RhaiResult<Option<ipnet::IpNet>> {
                    opt_str(&ctx, &opts, key)?
                        .map(|p| {
                            to_rhai(&ctx, parse_prefix(&p))?.ok_or_else(|| {
                                runtime_error(
                                    &ctx,
                                    format!("{key} is an address or prefix (\"all\" is what leaving it out means)"),
                                )
                            })
                        })
                        .transpose()
                };
                let (from, to) = (prefix("from")?, prefix("to")?);
                if let (Some(f), Some(t)) = (from, to) {
                    if f.addr().is_ipv6() != t.addr().is_ipv6() {
                        return Err(runtime_error(&ctx, "from and to are of different IP versions".into()));
                    }
                }
                let table = opts.get("table").map(|t| table(&ctx, t)).transpose()?.ok_or_else(|| {
                    runtime_error(&ctx, "a rule names the table it sends to: #{table: 100, ...}".into())
                })?;
                let rule = RuleSpec {
                    v6: from.or(to).is_some_and(|p| p.addr().is_ipv6()),
                    from,
                    to,
                    iif: opt_str(&ctx, &opts, "iif")?.map(|l| link_name(&ctx, &l)).transpose()?,
                    oif: opt_str(&ctx, &opts, "oif")?.map(|l| link_name(&ctx, &l)).transpose()?,
                    fwmark: opt_u32(&ctx, &opts, "fwmark")?,
                    priority: opt_u32(&ctx, &opts, "priority")?,
                    table,
                };
                let op = if delete { Op::DelRule { node, rule } } else { Op::AddRule { node, rule } };
                ss.apply(&ctx, op).map(|_| ())
            },
        );
    }

    // routes(node [, #{table}])
    let ss = s.clone();
    let routes = move |ctx: NativeCallContext, node: Dynamic, opts: Map| -> RhaiResult<Array> {
        reject_unknown(&ctx, &opts, &["table"])?;
        let node = ss.node(&ctx, &node)?;
        let table = opts.get("table").map(|t| table(&ctx, t)).transpose()?.unwrap_or(MAIN_TABLE);
        let routes = to_rhai(&ctx, ss.backend().routes(&node, table))?;
        let links = to_rhai(&ctx, ss.backend().links(&node, None))?;
        Ok(routes
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("dst".into(), r.destination.map(|d| d.to_string()).unwrap_or_else(|| "default".into()).into());
                m.insert("via".into(), r.gateway.map(|g| Dynamic::from(g.to_string())).unwrap_or(Dynamic::UNIT));
                m.insert("dev".into(), r.device_index.map(|i| dev_name(&links, i)).unwrap_or(Dynamic::UNIT));
                m.insert("scope".into(), r.scope.as_str().into());
                m.insert("type".into(), r.kind.as_str().into());
                m.insert("table".into(), (r.table as i64).into());
                m.insert("metric".into(), r.metric.map(|x| Dynamic::from(x as i64)).unwrap_or(Dynamic::UNIT));
                m.insert("proto".into(), r.proto.clone().into());
                m.insert("src".into(), r.src.map(|x| Dynamic::from(x.to_string())).unwrap_or(Dynamic::UNIT));
                m.insert("linkdown".into(), r.linkdown.into());
                m.insert("onlink".into(), r.onlink.into());
                let hops: Array = r
                    .nexthops
                    .iter()
                    .map(|h| {
                        let mut p = Map::new();
                        p.insert(
                            "via".into(),
                            h.gateway.map(|g| Dynamic::from(g.to_string())).unwrap_or(Dynamic::UNIT),
                        );
                        p.insert("dev".into(), h.device_index.map(|i| dev_name(&links, i)).unwrap_or(Dynamic::UNIT));
                        p.insert("weight".into(), (h.weight as i64).into());
                        p.insert("dead".into(), h.dead.into());
                        p.insert("linkdown".into(), h.linkdown.into());
                        Dynamic::from_map(p)
                    })
                    .collect();
                m.insert("nexthops".into(), hops.into());
                Dynamic::from_map(m)
            })
            .collect())
    };
    let r = routes.clone();
    engine.register_fn("routes", move |ctx: NativeCallContext, node: Dynamic| r(ctx, node, Map::new()));
    engine.register_fn("routes", routes);

    // rules(node)
    let ss = s.clone();
    engine.register_fn("rules", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        let rules = to_rhai(&ctx, ss.backend().rules(&node))?;
        let opt = |v: Option<String>| v.map(Dynamic::from).unwrap_or(Dynamic::UNIT);
        Ok(rules
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("family".into(), if r.v6 { "inet6" } else { "inet" }.into());
                m.insert("priority".into(), (r.priority as i64).into());
                m.insert("from".into(), r.from.map(|p| p.to_string()).unwrap_or_else(|| "all".into()).into());
                m.insert("to".into(), opt(r.to.map(|p| p.to_string())));
                m.insert("iif".into(), opt(r.iif.clone()));
                m.insert("oif".into(), opt(r.oif.clone()));
                m.insert("fwmark".into(), r.fwmark.map(|x| Dynamic::from(x as i64)).unwrap_or(Dynamic::UNIT));
                m.insert("table".into(), (r.table as i64).into());
                Dynamic::from_map(m)
            })
            .collect())
    });
}
