//! Bindings for the neighbour table and the bridge's forwarding database: entries
//! by hand (`ip neigh add/del/flush`), bridge port options (`bridge link set`), and
//! the FDB read back (`bridge fdb show`). Thin: parse, build an op or a query.

use std::rc::Rc;

use netlab_runtime::backend::kernel::addr::parse_ip;
use netlab_runtime::model::link::parse_mac;
use netlab_runtime::model::{BridgePortOpts, NeighState, Op};
use netlab_runtime::LinkName;
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::net::dev_name;
use super::session::Session;
use super::values::{opt_bool, opt_str, reject_unknown, runtime_error, to_rhai, RhaiResult};

fn link_name(ctx: &NativeCallContext, name: &str) -> RhaiResult<LinkName> {
    to_rhai(ctx, LinkName::new(name))
}

pub fn register(engine: &mut Engine, s: &Rc<Session>) {
    // neigh(node, "10.0.0.5", "02:00:00:00:00:05", #{dev: "eth0", state: "permanent"})
    let ss = s.clone();
    engine.register_fn(
        "neigh",
        move |ctx: NativeCallContext, node: Dynamic, ip: &str, mac: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &["dev", "state"])?;
            let node = ss.node(&ctx, &node)?;
            let ip = to_rhai(&ctx, parse_ip(ip))?;
            let mac = parse_mac(mac).ok_or_else(|| {
                runtime_error(&ctx, format!("{mac:?} is not a MAC address (six hex pairs: \"02:00:00:00:00:05\")"))
            })?;
            let dev = opt_str(&ctx, &opts, "dev")?
                .ok_or_else(|| runtime_error(&ctx, "a neighbour entry belongs to a link: #{dev: \"eth0\"}".into()))?;
            let dev = link_name(&ctx, &dev)?;
            let state = match opt_str(&ctx, &opts, "state")?.as_deref() {
                None | Some("permanent") => NeighState::Permanent,
                Some("reachable") => NeighState::Reachable,
                Some("stale") => NeighState::Stale,
                Some(other) => {
                    return Err(runtime_error(
                        &ctx,
                        format!("state {other:?}: \"permanent\" (the default), \"reachable\" or \"stale\""),
                    ))
                }
            };
            ss.apply(&ctx, Op::AddNeigh { node, dev, ip, mac, state }).map(|_| ())
        },
    );

    // del_neigh(node, "10.0.0.5", #{dev: "eth0"})
    let ss = s.clone();
    engine.register_fn(
        "del_neigh",
        move |ctx: NativeCallContext, node: Dynamic, ip: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &["dev"])?;
            let node = ss.node(&ctx, &node)?;
            let ip = to_rhai(&ctx, parse_ip(ip))?;
            let dev = opt_str(&ctx, &opts, "dev")?
                .ok_or_else(|| runtime_error(&ctx, "which link's entry: #{dev: \"eth0\"}".into()))?;
            let dev = link_name(&ctx, &dev)?;
            ss.apply(&ctx, Op::DelNeigh { node, dev, ip }).map(|_| ())
        },
    );

    // flush_neigh(node [, #{dev}])
    let ss = s.clone();
    let flush = move |ctx: NativeCallContext, node: Dynamic, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["dev"])?;
        let node = ss.node(&ctx, &node)?;
        let dev = opt_str(&ctx, &opts, "dev")?.map(|d| link_name(&ctx, &d)).transpose()?;
        ss.apply(&ctx, Op::FlushNeigh { node, dev }).map(|_| ())
    };
    let f = flush.clone();
    engine.register_fn("flush_neigh", move |ctx: NativeCallContext, node: Dynamic| f(ctx, node, Map::new()));
    engine.register_fn("flush_neigh", flush);

    // bridge_port(node, "veth0", #{learning: false, flood: false, isolated: true})
    let ss = s.clone();
    engine.register_fn(
        "bridge_port",
        move |ctx: NativeCallContext, node: Dynamic, port: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &["learning", "flood", "isolated"])?;
            let node = ss.node(&ctx, &node)?;
            let port = link_name(&ctx, port)?;
            let opts = BridgePortOpts {
                learning: opt_bool(&ctx, &opts, "learning")?,
                flood: opt_bool(&ctx, &opts, "flood")?,
                isolated: opt_bool(&ctx, &opts, "isolated")?,
            };
            if opts == BridgePortOpts::default() {
                return Err(runtime_error(&ctx, "bridge_port needs at least one of: learning, flood, isolated".into()));
            }
            ss.apply(&ctx, Op::SetBridgePort { node, port, opts }).map(|_| ())
        },
    );

    // fdb(node, "br0"): the bridge's forwarding database
    let ss = s.clone();
    engine.register_fn("fdb", move |ctx: NativeCallContext, node: Dynamic, bridge: &str| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        let bridge = link_name(&ctx, bridge)?;
        let entries = to_rhai(&ctx, ss.backend().fdb(&node, &bridge))?;
        let links = to_rhai(&ctx, ss.backend().links(&node, None))?;
        Ok(entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("mac".into(), e.mac.clone().into());
                m.insert("dev".into(), dev_name(&links, e.port_index));
                m.insert("state".into(), e.state.as_str().into());
                m.insert("vlan".into(), e.vlan.map(|v| Dynamic::from(v as i64)).unwrap_or(Dynamic::UNIT));
                Dynamic::from_map(m)
            })
            .collect())
    });
}
