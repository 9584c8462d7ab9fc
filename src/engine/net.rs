//! Bindings for building the network: nodes, links, addresses, routes, sysctls,
//! and reading state back. Thin: parse arguments, call the runtime, convert errors.

use std::rc::Rc;

use netlab_runtime::addr::{parse_cidr, parse_prefix};
use netlab_runtime::route::NextHop;
use netlab_runtime::{Lab, LinkName};
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::values::{link_map, node_arg, to_rhai, NodeRef, RhaiResult};

fn link_name(ctx: &NativeCallContext, name: &str) -> RhaiResult<LinkName> {
    to_rhai(ctx, LinkName::new(name))
}

pub fn register(engine: &mut Engine, lab: &Rc<Lab>) {
    engine.register_type_with_name::<NodeRef>("Node");
    engine.register_fn("to_string", |n: &mut NodeRef| n.name());
    engine.register_fn("to_debug", |n: &mut NodeRef| format!("Node({})", n.name()));
    engine.register_get("name", |n: &mut NodeRef| n.name());
    engine.register_fn("==", |a: &mut NodeRef, b: NodeRef| std::rc::Rc::ptr_eq(&a.0, &b.0));
    engine.register_fn("!=", |a: &mut NodeRef, b: NodeRef| !std::rc::Rc::ptr_eq(&a.0, &b.0));

    let l = lab.clone();
    engine.register_fn("host", move || NodeRef(l.host()));
    let l = lab.clone();
    engine.register_fn("netns", move |ctx: NativeCallContext, name: &str| -> RhaiResult<NodeRef> {
        to_rhai(&ctx, l.create_node(name)).map(NodeRef)
    });
    let l = lab.clone();
    engine.register_fn("del_netns", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<()> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.delete_node(&node))
    });
    let l = lab.clone();
    engine.register_fn("node", move |ctx: NativeCallContext, name: &str| -> RhaiResult<NodeRef> {
        to_rhai(&ctx, l.node(name)).map(NodeRef)
    });

    // veth(node_a, name_a, node_b, name_b) and veth(node, name_a, name_b).
    let l = lab.clone();
    let veth = move |ctx: NativeCallContext, a: Dynamic, a_name: &str, b: Dynamic, b_name: &str| -> RhaiResult<()> {
        let (a, b) = (node_arg(&ctx, &l, &a)?, node_arg(&ctx, &l, &b)?);
        let (a_name, b_name) = (link_name(&ctx, a_name)?, link_name(&ctx, b_name)?);
        to_rhai(&ctx, l.block_on(a.create_veth(&a_name, &b, &b_name)))?;
        l.mark_node(&a);
        l.mark_node(&b);
        Ok(())
    };
    let v = veth.clone();
    engine.register_fn("veth", move |ctx: NativeCallContext, a: Dynamic, a_name: &str, b_name: &str| {
        v(ctx, a.clone(), a_name, a, b_name)
    });
    engine.register_fn("veth", veth);

    let l = lab.clone();
    engine.register_fn("bridge", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<()> {
        let node = node_arg(&ctx, &l, &node)?;
        let name = link_name(&ctx, name)?;
        to_rhai(&ctx, l.block_on(node.create_bridge(&name)))?;
        l.record_bridge(&node);
        l.mark_node(&node);
        Ok(())
    });

    for (fname, up) in [("up", true), ("down", false)] {
        let l = lab.clone();
        engine.register_fn(fname, move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<()> {
            let node = node_arg(&ctx, &l, &node)?;
            let name = link_name(&ctx, name)?;
            to_rhai(&ctx, l.block_on(node.set_link_up(&name, up)))?;
            l.mark_node(&node);
            Ok(())
        });
    }

    let l = lab.clone();
    engine.register_fn(
        "master",
        move |ctx: NativeCallContext, node: Dynamic, link: &str, bridge: &str| -> RhaiResult<()> {
            let node = node_arg(&ctx, &l, &node)?;
            let (link, bridge) = (link_name(&ctx, link)?, link_name(&ctx, bridge)?);
            to_rhai(&ctx, l.block_on(node.set_master(&link, Some(&bridge))))?;
            l.mark_node(&node);
            Ok(())
        },
    );
    let l = lab.clone();
    engine.register_fn("nomaster", move |ctx: NativeCallContext, node: Dynamic, link: &str| -> RhaiResult<()> {
        let node = node_arg(&ctx, &l, &node)?;
        let link = link_name(&ctx, link)?;
        to_rhai(&ctx, l.block_on(node.set_master(&link, None)))?;
        l.mark_node(&node);
        Ok(())
    });
    // move_link(node, "link", target) and move_link(node, "link", target, "new_name")
    for renamed in [false, true] {
        let l = lab.clone();
        let f = move |ctx: NativeCallContext,
                      node: Dynamic,
                      link: &str,
                      target: Dynamic,
                      new_name: &str|
              -> RhaiResult<()> {
            let (node, target) = (node_arg(&ctx, &l, &node)?, node_arg(&ctx, &l, &target)?);
            let (link, new_name) = (link_name(&ctx, link)?, link_name(&ctx, new_name)?);
            to_rhai(&ctx, l.block_on(node.move_link(&link, &target, &new_name)))?;
            l.mark_node(&node);
            l.mark_node(&target);
            Ok(())
        };
        if renamed {
            engine.register_fn("move_link", f);
        } else {
            engine.register_fn(
                "move_link",
                move |ctx: NativeCallContext, node: Dynamic, link: &str, target: Dynamic| -> RhaiResult<()> {
                    let name = link.to_string();
                    f(ctx, node, link, target, &name)
                },
            );
        }
    }

    let l = lab.clone();
    engine.register_fn("del_link", move |ctx: NativeCallContext, node: Dynamic, link: &str| -> RhaiResult<()> {
        let node = node_arg(&ctx, &l, &node)?;
        let link = link_name(&ctx, link)?;
        to_rhai(&ctx, l.block_on(node.delete_link(&link)))?;
        l.mark_node(&node);
        Ok(())
    });

    let l = lab.clone();
    engine.register_fn(
        "addr",
        move |ctx: NativeCallContext, node: Dynamic, link: &str, cidr: &str| -> RhaiResult<()> {
            let node = node_arg(&ctx, &l, &node)?;
            let link = link_name(&ctx, link)?;
            let cidr = to_rhai(&ctx, parse_cidr(cidr))?;
            if cidr.addr().is_ipv6() {
                // Nodes keep IPv6 off on new links until a lab uses it (see node.rs).
                to_rhai(&ctx, l.block_on(node.link(&link)))?;
                to_rhai(&ctx, l.set_sysctl(&node, &format!("net/ipv6/conf/{link}/disable_ipv6"), "0"))?;
            }
            to_rhai(&ctx, l.block_on(node.add_address(&link, cidr)))?;
            l.mark_node(&node);
            Ok(())
        },
    );
    let l = lab.clone();
    engine.register_fn(
        "del_addr",
        move |ctx: NativeCallContext, node: Dynamic, link: &str, cidr: &str| -> RhaiResult<()> {
            let node = node_arg(&ctx, &l, &node)?;
            let link = link_name(&ctx, link)?;
            let cidr = to_rhai(&ctx, parse_cidr(cidr))?;
            to_rhai(&ctx, l.block_on(node.delete_address(&link, cidr)))?;
            l.mark_node(&node);
            Ok(())
        },
    );

    // route(node, "default" | "10.0.0.0/24", "10.0.0.1" | "veth0")
    let l = lab.clone();
    engine.register_fn(
        "route",
        move |ctx: NativeCallContext, node: Dynamic, dest: &str, via: &str| -> RhaiResult<()> {
            let node = node_arg(&ctx, &l, &node)?;
            let dest = to_rhai(&ctx, parse_prefix(dest))?;
            let hop = match via.parse() {
                Ok(ip) => NextHop::Gateway(ip),
                Err(_) => NextHop::Device(link_name(&ctx, via)?),
            };
            to_rhai(&ctx, l.block_on(node.add_route(dest, &hop)))?;
            l.mark_node(&node);
            Ok(())
        },
    );
    let l = lab.clone();
    engine.register_fn("del_route", move |ctx: NativeCallContext, node: Dynamic, dest: &str| -> RhaiResult<()> {
        let node = node_arg(&ctx, &l, &node)?;
        let dest = to_rhai(&ctx, parse_prefix(dest))?;
        to_rhai(&ctx, l.block_on(node.delete_route(dest)))?;
        l.mark_node(&node);
        Ok(())
    });

    let l = lab.clone();
    engine.register_fn(
        "sysctl",
        move |ctx: NativeCallContext, node: Dynamic, key: &str, value: Dynamic| -> RhaiResult<()> {
            let node = node_arg(&ctx, &l, &node)?;
            to_rhai(&ctx, l.set_sysctl(&node, key, &value.to_string()))
        },
    );
    let l = lab.clone();
    engine.register_fn("sysctl", move |ctx: NativeCallContext, node: Dynamic, key: &str| -> RhaiResult<String> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.get_sysctl(&node, key))
    });

    register_queries(engine, lab);
}

/// Reading state back: what `ip link`, `ip addr`, `ip route` and `ip neigh` show.
fn register_queries(engine: &mut Engine, lab: &Rc<Lab>) {
    let l = lab.clone();
    engine.register_fn("links", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.settle_links(&node, None))?;
        let links = to_rhai(&ctx, l.block_on(node.links()))?;
        Ok(links.iter().map(|x| Dynamic::from_map(link_map(x, &links))).collect())
    });
    let l = lab.clone();
    engine.register_fn("link", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<Map> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.settle_links(&node, Some(name)))?;
        let name = link_name(&ctx, name)?;
        let link = to_rhai(&ctx, l.block_on(node.link(&name)))?;
        let links = to_rhai(&ctx, l.block_on(node.links()))?;
        Ok(link_map(&link, &links))
    });
    let l = lab.clone();
    engine.register_fn("mac", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<String> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.settle())?;
        let name = link_name(&ctx, name)?;
        Ok(to_rhai(&ctx, l.block_on(node.link(&name)))?.mac)
    });
    let l = lab.clone();
    engine.register_fn("addrs", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.settle())?;
        let links = to_rhai(&ctx, l.block_on(node.links()))?;
        let addrs = to_rhai(&ctx, l.block_on(node.addresses()))?;
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
                Dynamic::from_map(m)
            })
            .collect())
    });
    let l = lab.clone();
    engine.register_fn("routes", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.settle())?;
        let links = to_rhai(&ctx, l.block_on(node.links()))?;
        let routes = to_rhai(&ctx, l.block_on(node.routes()))?;
        Ok(routes
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("dst".into(), r.destination.map(|d| d.to_string()).unwrap_or_else(|| "default".into()).into());
                m.insert("via".into(), r.gateway.map(|g| Dynamic::from(g.to_string())).unwrap_or(Dynamic::UNIT));
                m.insert("dev".into(), r.device_index.map(|i| dev_name(&links, i)).unwrap_or(Dynamic::UNIT));
                m.insert("scope".into(), r.scope.as_str().into());
                Dynamic::from_map(m)
            })
            .collect())
    });
    let l = lab.clone();
    engine.register_fn("neighbors", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<Array> {
        let node = node_arg(&ctx, &l, &node)?;
        to_rhai(&ctx, l.settle())?;
        let links = to_rhai(&ctx, l.block_on(node.links()))?;
        let neigh = to_rhai(&ctx, l.block_on(node.neighbours()))?;
        Ok(neigh
            .iter()
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

fn dev_name(links: &[netlab_runtime::link::LinkState], index: u32) -> Dynamic {
    links.iter().find(|l| l.index == index).map(|l| Dynamic::from(l.name.clone())).unwrap_or(Dynamic::UNIT)
}
