//! Bindings for a bridge's own options and VLAN table, and for bonds. Thin: parse
//! the arguments and option maps into ops, hand them to the session.

use std::rc::Rc;

use netlab_runtime::model::{BondMode, BondSpec, BridgeOpts, LinkKind, LinkSpec, Op};
use netlab_runtime::{LinkName, NodeName};
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::net::dev_name;
use super::session::Session;
use super::values::{opt_bool, opt_int, opt_str, reject_unknown, runtime_error, to_rhai, type_error, RhaiResult};

const BRIDGE_KEYS: [&str; 5] = ["stp", "ageing", "forward_delay", "vlan_filtering", "default_pvid"];
/// netlab's miimon unless the lab says: the kernel's own, 0, never notices a port failing.
const MIIMON_MS: i64 = 100;

fn link_name(ctx: &NativeCallContext, name: &str) -> RhaiResult<LinkName> {
    to_rhai(ctx, LinkName::new(name))
}

fn bridge_opts(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<BridgeOpts> {
    reject_unknown(ctx, opts, &BRIDGE_KEYS)?;
    Ok(BridgeOpts {
        stp: opt_bool(ctx, opts, "stp")?,
        // The kernel's limits, in seconds: ageing up to a day here, forward_delay
        // 2 to 30 s (STP's range).
        ageing: opt_int(ctx, opts, "ageing", 0..=86_400)?.map(|s| s as u32),
        forward_delay: opt_int(ctx, opts, "forward_delay", 2..=30)?.map(|s| s as u32),
        vlan_filtering: opt_bool(ctx, opts, "vlan_filtering")?,
        default_pvid: opt_int(ctx, opts, "default_pvid", 0..=4094)?.map(|p| p as u16),
    })
}

fn vid(ctx: &NativeCallContext, vid: i64) -> RhaiResult<u16> {
    if !(1..=4094).contains(&vid) {
        return Err(runtime_error(ctx, format!("a VLAN id is 1 to 4094, not {vid}")));
    }
    Ok(vid as u16)
}

/// Whether `dev` is a bridge (then `bridge vlan ... self`: the bridge's own port).
fn is_bridge(ss: &Session, ctx: &NativeCallContext, node: &NodeName, dev: &LinkName) -> RhaiResult<bool> {
    let links = to_rhai(ctx, ss.backend().links(node, None))?;
    Ok(links.iter().any(|l| l.name == dev.as_str() && l.kind == LinkKind::Bridge))
}

pub fn register(engine: &mut Engine, s: &Rc<Session>) {
    // bridge(node, "br0", #{stp, ageing, forward_delay, vlan_filtering, default_pvid})
    let ss = s.clone();
    engine.register_fn(
        "bridge",
        move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
            let opts = bridge_opts(&ctx, &opts)?;
            let node = ss.node(&ctx, &node)?;
            let name = link_name(&ctx, name)?;
            ss.apply(&ctx, Op::AddBridge { node: node.clone(), name: name.clone() })?;
            if !opts.is_empty() {
                ss.apply(&ctx, Op::SetBridge { node, bridge: name, opts })?;
            }
            Ok(())
        },
    );

    // set_bridge(node, "br0", #{...}): the same options on an existing bridge.
    let ss = s.clone();
    engine.register_fn(
        "set_bridge",
        move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
            let opts = bridge_opts(&ctx, &opts)?;
            if opts.is_empty() {
                return Err(runtime_error(
                    &ctx,
                    format!("set_bridge needs at least one of: {}", BRIDGE_KEYS.join(", ")),
                ));
            }
            let node = ss.node(&ctx, &node)?;
            let bridge = link_name(&ctx, name)?;
            ss.apply(&ctx, Op::SetBridge { node, bridge, opts }).map(|_| ())
        },
    );

    // bridge_vlan(node, "veth1", 10 [, #{pvid, untagged}])
    let ss = s.clone();
    let add = move |ctx: NativeCallContext, node: Dynamic, dev: &str, id: i64, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["pvid", "untagged"])?;
        let node = ss.node(&ctx, &node)?;
        let dev = link_name(&ctx, dev)?;
        let vid = vid(&ctx, id)?;
        let pvid = opt_bool(&ctx, &opts, "pvid")?.unwrap_or(false);
        let untagged = opt_bool(&ctx, &opts, "untagged")?.unwrap_or(false);
        let bridge_self = is_bridge(&ss, &ctx, &node, &dev)?;
        ss.apply(&ctx, Op::AddBridgeVlan { node, dev, vid, pvid, untagged, bridge_self }).map(|_| ())
    };
    let a = add.clone();
    engine.register_fn("bridge_vlan", move |ctx: NativeCallContext, node: Dynamic, dev: &str, id: i64| {
        a(ctx, node, dev, id, Map::new())
    });
    engine.register_fn("bridge_vlan", add);

    // del_bridge_vlan(node, "veth1", 1)
    let ss = s.clone();
    engine.register_fn(
        "del_bridge_vlan",
        move |ctx: NativeCallContext, node: Dynamic, dev: &str, id: i64| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            let dev = link_name(&ctx, dev)?;
            let vid = vid(&ctx, id)?;
            let bridge_self = is_bridge(&ss, &ctx, &node, &dev)?;
            ss.apply(&ctx, Op::DelBridgeVlan { node, dev, vid, bridge_self }).map(|_| ())
        },
    );

    // bridge_vlans(node): `bridge vlan show`
    let ss = s.clone();
    engine.register_fn("bridge_vlans", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        let vlans = to_rhai(&ctx, ss.backend().bridge_vlans(&node))?;
        let links = to_rhai(&ctx, ss.backend().links(&node, None))?;
        Ok(vlans
            .iter()
            .map(|v| {
                let mut m = Map::new();
                m.insert("dev".into(), dev_name(&links, v.link_index));
                m.insert("vid".into(), (v.vid as i64).into());
                m.insert("pvid".into(), v.pvid.into());
                m.insert("untagged".into(), v.untagged.into());
                Dynamic::from_map(m)
            })
            .collect())
    });

    // bond(node, "bond0", #{mode, ports, miimon, mtu, mac, txqueuelen, alias})
    let ss = s.clone();
    let bond = move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["mode", "ports", "miimon", "mtu", "mac", "txqueuelen", "alias"])?;
        let node = ss.node(&ctx, &node)?;
        let name = link_name(&ctx, name)?;
        let mode = match opt_str(&ctx, &opts, "mode")? {
            None => BondMode::BalanceRr,
            Some(m) => BondMode::parse(&m).ok_or_else(|| {
                let modes: Vec<&str> = BondMode::ALL.iter().map(|m| m.name()).collect();
                runtime_error(&ctx, format!("mode {m:?} is not a bond mode: {}", modes.join(", ")))
            })?,
        };
        let miimon = opt_int(&ctx, &opts, "miimon", 0..=60_000)?.unwrap_or(MIIMON_MS) as u32;
        let ports = match opts.get("ports") {
            None => Vec::new(),
            Some(v) => {
                let items =
                    v.clone().into_array().map_err(|_| type_error(&ctx, "an array of link names for ports", v))?;
                items
                    .iter()
                    .map(|p| {
                        let p = p.clone().into_string().map_err(|_| type_error(&ctx, "a link name in ports", p))?;
                        link_name(&ctx, &p)
                    })
                    .collect::<RhaiResult<Vec<_>>>()?
            }
        };
        let mut attr_opts = opts.clone();
        for key in ["mode", "ports", "miimon"] {
            attr_opts.remove(key);
        }
        let attrs = super::links::attrs_of(&ctx, &attr_opts)?;
        let spec = LinkSpec::Bond(BondSpec { mode, miimon });
        ss.apply(&ctx, Op::AddLink { node: node.clone(), name: name.clone(), spec, attrs })?;
        for port in ports {
            // `ip link set PORT down` first: the bonding driver takes only a port that
            // is down, and brings it up itself.
            ss.apply(&ctx, Op::SetUp { node: node.clone(), link: port.clone(), up: false })?;
            ss.apply(&ctx, Op::SetMaster { node: node.clone(), link: port, master: Some(name.clone()) })?;
        }
        Ok(())
    };
    let b = bond.clone();
    engine.register_fn("bond", move |ctx: NativeCallContext, node: Dynamic, name: &str| b(ctx, node, name, Map::new()));
    engine.register_fn("bond", bond);
}
