//! Bindings for building the network: nodes, links, addresses, routes, sysctls,
//! and reading state back. Thin: parse arguments, build an op or a query, hand it
//! to the session.

use std::rc::Rc;

use netlab_runtime::backend::kernel::addr::parse_cidr;
use netlab_runtime::error::known_names_help;
use netlab_runtime::model::{LinkKind, LinkState, NeighState, Op};
use netlab_runtime::{Error, LinkName, NodeName};
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::session::{NodeRef, Session};
use super::values::{link_map, to_rhai, RhaiResult};

fn link_name(ctx: &NativeCallContext, name: &str) -> RhaiResult<LinkName> {
    to_rhai(ctx, LinkName::new(name))
}

/// A sysctl key as `sysctl -w` writes it, once validated: dotted, unless a component
/// has a dot of its own (a link named eth0.10), where only the slash form is exact.
fn sysctl_key(ctx: &NativeCallContext, key: &str) -> RhaiResult<String> {
    to_rhai(ctx, netlab_runtime::backend::kernel::sysctl::path_for(key))?;
    Ok(netlab_runtime::render::ip::sysctl_key(key))
}

pub fn register(engine: &mut Engine, s: &Rc<Session>) {
    engine.register_type_with_name::<NodeRef>("Node");
    engine.register_fn("to_string", |n: &mut NodeRef| n.name.to_string());
    engine.register_fn("to_debug", |n: &mut NodeRef| format!("Node({})", n.name));
    engine.register_get("name", |n: &mut NodeRef| n.name.to_string());
    engine.register_fn("==", |a: &mut NodeRef, b: NodeRef| *a == b);
    engine.register_fn("!=", |a: &mut NodeRef, b: NodeRef| *a != b);

    let ss = s.clone();
    engine
        .register_fn("host", move || ss.node_ref(NodeName::new(netlab_runtime::backend::kernel::HOST).expect("valid")));
    let ss = s.clone();
    engine.register_fn("netns", move |ctx: NativeCallContext, name: &str| -> RhaiResult<NodeRef> {
        let node = to_rhai(&ctx, NodeName::new(name))?;
        ss.apply(&ctx, Op::AddNode { node: node.clone() })?;
        Ok(ss.node_ref(node))
    });
    let ss = s.clone();
    engine.register_fn("del_netns", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        ss.apply(&ctx, Op::DelNode { node }).map(|_| ())
    });
    let ss = s.clone();
    engine.register_fn("node", move |ctx: NativeCallContext, name: &str| -> RhaiResult<NodeRef> {
        let node = to_rhai(&ctx, ss.backend().require_node(name))?;
        Ok(ss.found_node_ref(node))
    });

    // veth(node_a, name_a, node_b, name_b) and veth(node, name_a, name_b).
    let ss = s.clone();
    let veth = move |ctx: NativeCallContext, a: Dynamic, a_name: &str, b: Dynamic, b_name: &str| -> RhaiResult<()> {
        let (node, peer_node) = (ss.node(&ctx, &a)?, ss.node(&ctx, &b)?);
        let (name, peer) = (link_name(&ctx, a_name)?, link_name(&ctx, b_name)?);
        ss.apply(&ctx, Op::AddVeth { node, name, peer_node, peer }).map(|_| ())
    };
    let v = veth.clone();
    engine.register_fn("veth", move |ctx: NativeCallContext, a: Dynamic, a_name: &str, b_name: &str| {
        v(ctx, a.clone(), a_name, a, b_name)
    });
    engine.register_fn("veth", veth);

    let ss = s.clone();
    engine.register_fn("bridge", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        let name = link_name(&ctx, name)?;
        ss.apply(&ctx, Op::AddBridge { node, name }).map(|_| ())
    });

    for (fname, up) in [("up", true), ("down", false)] {
        let ss = s.clone();
        engine.register_fn(fname, move |ctx: NativeCallContext, node: Dynamic, link: &str| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            let link = link_name(&ctx, link)?;
            ss.apply(&ctx, Op::SetUp { node, link, up }).map(|_| ())
        });
    }

    let ss = s.clone();
    engine.register_fn(
        "master",
        move |ctx: NativeCallContext, node: Dynamic, link: &str, bridge: &str| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            let (link, bridge) = (link_name(&ctx, link)?, link_name(&ctx, bridge)?);
            ss.apply(&ctx, Op::SetMaster { node, link, master: Some(bridge) }).map(|_| ())
        },
    );
    let ss = s.clone();
    engine.register_fn("nomaster", move |ctx: NativeCallContext, node: Dynamic, link: &str| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        let link = link_name(&ctx, link)?;
        ss.apply(&ctx, Op::SetMaster { node, link, master: None }).map(|_| ())
    });
    // move_link(node, "link", target) and move_link(node, "link", target, "new_name")
    let ss = s.clone();
    let move_link =
        move |ctx: NativeCallContext, node: Dynamic, link: &str, target: Dynamic, new_name: &str| -> RhaiResult<()> {
            let (node, to) = (ss.node(&ctx, &node)?, ss.node(&ctx, &target)?);
            let (link, new_name) = (link_name(&ctx, link)?, link_name(&ctx, new_name)?);
            ss.apply(&ctx, Op::MoveLink { node, link, to, new_name }).map(|_| ())
        };
    let m = move_link.clone();
    engine.register_fn("move_link", move |ctx: NativeCallContext, node: Dynamic, link: &str, target: Dynamic| {
        m(ctx, node, link, target, link)
    });
    engine.register_fn("move_link", move_link);

    let ss = s.clone();
    engine.register_fn("del_link", move |ctx: NativeCallContext, node: Dynamic, link: &str| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        let link = link_name(&ctx, link)?;
        ss.apply(&ctx, Op::DelLink { node, link }).map(|_| ())
    });

    for add in [true, false] {
        let ss = s.clone();
        engine.register_fn(
            if add { "addr" } else { "del_addr" },
            move |ctx: NativeCallContext, node: Dynamic, link: &str, cidr: &str| -> RhaiResult<()> {
                let node = ss.node(&ctx, &node)?;
                let link = link_name(&ctx, link)?;
                let cidr = to_rhai(&ctx, parse_cidr(cidr))?;
                let op = if add { Op::AddAddr { node, link, cidr } } else { Op::DelAddr { node, link, cidr } };
                ss.apply(&ctx, op).map(|_| ())
            },
        );
    }

    let ss = s.clone();
    engine.register_fn(
        "sysctl",
        move |ctx: NativeCallContext, node: Dynamic, key: &str, value: Dynamic| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            let key = sysctl_key(&ctx, key)?;
            to_rhai(&ctx, netlab_runtime::backend::kernel::sysctl::path_for_write(&key))?;
            ss.apply(&ctx, Op::SetSysctl { node, key, value: value.to_string() }).map(|_| ())
        },
    );
    let ss = s.clone();
    engine.register_fn("sysctl", move |ctx: NativeCallContext, node: Dynamic, key: &str| -> RhaiResult<String> {
        let node = ss.node(&ctx, &node)?;
        let key = sysctl_key(&ctx, key)?;
        to_rhai(&ctx, ss.backend().sysctl(&node, &key))
    });

    register_queries(engine, s);
}

/// One link of the node, by name, from a listing.
fn find_link(node: &NodeName, links: &[LinkState], name: &str) -> Result<LinkState, Error> {
    links.iter().find(|l| l.name == name).cloned().ok_or_else(|| Error::NoSuchLink {
        node: node.to_string(),
        link: name.to_string(),
        help: known_names_help(&format!("links in {node}"), &links.iter().map(|l| l.name.clone()).collect::<Vec<_>>()),
    })
}

/// Reading state back: what `ip link`, `ip addr`, `ip route` and `ip neigh` show.
fn register_queries(engine: &mut Engine, s: &Rc<Session>) {
    let ss = s.clone();
    engine.register_fn("links", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        let links = to_rhai(&ctx, ss.backend().links(&node, Some(None)))?;
        Ok(links.iter().map(|x| Dynamic::from_map(link_map(x, &links))).collect())
    });
    let ss = s.clone();
    engine.register_fn("link", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<Map> {
        let node = ss.node(&ctx, &node)?;
        link_name(&ctx, name)?;
        let links = to_rhai(&ctx, ss.backend().links(&node, Some(Some(name))))?;
        let link = to_rhai(&ctx, find_link(&node, &links, name))?;
        if matches!(link.kind, LinkKind::Vlan | LinkKind::Macvlan) {
            // Its parent is named from the node's other links.
            let all = to_rhai(&ctx, ss.backend().links(&node, Some(None)))?;
            return Ok(link_map(&link, &all));
        }
        Ok(link_map(&link, &links))
    });
    let ss = s.clone();
    engine.register_fn("mac", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<String> {
        let node = ss.node(&ctx, &node)?;
        link_name(&ctx, name)?;
        let links = to_rhai(&ctx, ss.backend().links(&node, None))?;
        Ok(to_rhai(&ctx, find_link(&node, &links, name))?.mac)
    });
    let ss = s.clone();
    engine.register_fn("addrs", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        let addrs = to_rhai(&ctx, ss.backend().addresses(&node))?;
        let links = to_rhai(&ctx, ss.backend().links(&node, None))?;
        Ok(addrs
            .iter()
            .map(|a| {
                let mut m = Map::new();
                m.insert("dev".into(), dev_name(&links, a.link_index));
                m.insert("cidr".into(), a.cidr.to_string().into());
                m.insert("ip".into(), a.cidr.addr().to_string().into());
                m.insert("prefix".into(), (a.cidr.prefix_len() as i64).into());
                m.insert(
                    "broadcast".into(),
                    a.broadcast.map(|b| Dynamic::from(b.to_string())).unwrap_or(Dynamic::UNIT),
                );
                let flags: rhai::Array = a.flags.names().into_iter().map(Dynamic::from).collect();
                m.insert("flags".into(), flags.into());
                Dynamic::from_map(m)
            })
            .collect())
    });
    let ss = s.clone();
    engine.register_fn("neighbors", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = ss.node(&ctx, &node)?;
        let neigh = to_rhai(&ctx, ss.backend().neighbours(&node))?;
        let links = to_rhai(&ctx, ss.backend().links(&node, None))?;
        // As `ip neigh` lists them: without NOARP entries (lo's, and those of links
        // that need no ARP), which it shows only with `nud all`.
        Ok(neigh
            .iter()
            .filter(|n| n.state != NeighState::Noarp)
            .map(|n| {
                let mut m = Map::new();
                m.insert("ip".into(), n.ip.to_string().into());
                m.insert("mac".into(), n.mac.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
                m.insert("dev".into(), dev_name(&links, n.link_index));
                m.insert("state".into(), n.state.as_str().into());
                Dynamic::from_map(m)
            })
            .collect())
    });
}

pub(super) fn dev_name(links: &[LinkState], index: u32) -> Dynamic {
    links.iter().find(|l| l.index == index).map(|l| Dynamic::from(l.name.clone())).unwrap_or(Dynamic::UNIT)
}
