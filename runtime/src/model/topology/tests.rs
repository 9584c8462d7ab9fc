//! Unit tests of the topology: apply's errors and the derived state.

use std::net::IpAddr;

use ipnet::IpNet;

use super::*;
use crate::model::op::Op;
use crate::model::state::{LinkState, NextHop, OperState, PortState};

fn nn(s: &str) -> NodeName {
    NodeName::new(s).unwrap()
}
fn ln(s: &str) -> LinkName {
    LinkName::new(s).unwrap()
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node(name: &str) -> Op {
    Op::AddNode { node: nn(name) }
}
fn veth(node: &str, name: &str, peer_node: &str, peer: &str) -> Op {
    Op::AddVeth { node: nn(node), name: ln(name), peer_node: nn(peer_node), peer: ln(peer) }
}
fn bridge(node: &str, name: &str) -> Op {
    Op::AddBridge { node: nn(node), name: ln(name) }
}
fn up(node: &str, link: &str) -> Op {
    Op::SetUp { node: nn(node), link: ln(link), up: true }
}
fn down(node: &str, link: &str) -> Op {
    Op::SetUp { node: nn(node), link: ln(link), up: false }
}
fn master(node: &str, link: &str, br: &str) -> Op {
    Op::SetMaster { node: nn(node), link: ln(link), master: Some(ln(br)) }
}
fn addr(node: &str, link: &str, cidr: &str) -> Op {
    Op::AddAddr { node: nn(node), link: ln(link), cidr: net(cidr) }
}
fn del_addr(node: &str, link: &str, cidr: &str) -> Op {
    Op::DelAddr { node: nn(node), link: ln(link), cidr: net(cidr) }
}
fn dest(d: &str) -> Option<IpNet> {
    (d != "default").then(|| net(d))
}
fn via(node: &str, d: &str, gw: &str) -> Op {
    Op::AddRoute { node: nn(node), dest: dest(d), hop: NextHop::Gateway(ip(gw)), opts: Default::default() }
}
fn dev(node: &str, d: &str, link: &str) -> Op {
    Op::AddRoute { node: nn(node), dest: dest(d), hop: NextHop::Device(ln(link)), opts: Default::default() }
}
fn sysctl(node: &str, key: &str, value: &str) -> Op {
    Op::SetSysctl { node: nn(node), key: key.into(), value: value.into() }
}
fn move_link(node: &str, link: &str, to: &str, new_name: &str) -> Op {
    Op::MoveLink { node: nn(node), link: ln(link), to: nn(to), new_name: ln(new_name) }
}
fn del_link(node: &str, link: &str) -> Op {
    Op::DelLink { node: nn(node), link: ln(link) }
}

fn build(ops: &[Op]) -> Topology {
    let mut t = Topology::new();
    for op in ops {
        t.apply(op).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
    t
}

fn fails(t: &mut Topology, op: Op) -> Error {
    match t.apply(&op) {
        Ok(()) => panic!("{op:?} should fail"),
        Err(e) => e,
    }
}

fn errno(e: &Error) -> Option<i32> {
    match e {
        Error::Kernel { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

fn help(e: &Error) -> String {
    use miette::Diagnostic;
    e.help().map(|h| h.to_string()).unwrap_or_default()
}

fn link(t: &Topology, node: &str, name: &str) -> LinkState {
    t.links(node).unwrap().into_iter().find(|l| l.name == name).unwrap_or_else(|| panic!("no {name} in {node}"))
}

fn cidrs(t: &Topology, node: &str) -> Vec<String> {
    t.addresses(node).unwrap().iter().map(|a| a.cidr.to_string()).collect()
}

fn route_dests(t: &Topology, node: &str) -> Vec<String> {
    t.routes(node).unwrap().iter().map(|r| r.destination.map_or("default".into(), |d| d.to_string())).collect()
}

/// Two nodes joined by a veth pair, both ends up with 10.0.0.1/24 and 10.0.0.2/24.
fn pair() -> Topology {
    build(&[
        node("a"),
        node("b"),
        veth("a", "eth0", "b", "eth0"),
        addr("a", "eth0", "10.0.0.1/24"),
        addr("b", "eth0", "10.0.0.2/24"),
        up("a", "eth0"),
        up("b", "eth0"),
    ])
}

#[test]
fn the_host_starts_with_lo_up() {
    let t = Topology::new();
    assert_eq!(t.node_names(), vec![nn("host")]);
    let lo = link(&t, "host", "lo");
    assert_eq!(
        (lo.index, lo.kind, lo.admin_up, lo.oper, lo.carrier),
        (1, LinkKind::Loopback, true, OperState::Unknown, true)
    );
    assert_eq!((lo.mtu, lo.mac.as_str()), (65536, "00:00:00:00:00:00"));
    assert_eq!(cidrs(&t, "host"), ["127.0.0.1/8", "::1/128"]);
    assert_eq!(t.addresses("host").unwrap()[0].broadcast, None);
    assert!(t.routes("host").unwrap().is_empty(), "lo's routes are in the local table");
}

#[test]
fn a_new_node_has_lo_down_until_brought_up() {
    let mut t = build(&[node("c")]);
    let lo = link(&t, "c", "lo");
    assert_eq!((lo.index, lo.admin_up, lo.oper), (1, false, OperState::Down));
    assert!(cidrs(&t, "c").is_empty());
    t.apply(&up("c", "lo")).unwrap();
    assert_eq!(cidrs(&t, "c"), ["127.0.0.1/8", "::1/128"]);
    assert_eq!(link(&t, "c", "lo").oper, OperState::Unknown);
}

#[test]
fn nodes_are_listed_host_first_then_by_name() {
    let t = build(&[node("zeta"), node("alpha")]);
    assert_eq!(t.node_names(), vec![nn("host"), nn("alpha"), nn("zeta")]);
}

#[test]
fn node_errors() {
    let mut t = build(&[node("a")]);
    assert!(matches!(fails(&mut t, node("a")), Error::NodeExists { .. }));
    let e = fails(&mut t, up("nope", "lo"));
    assert!(matches!(&e, Error::NoSuchNode { name, .. } if name == "nope"), "{e:?}");
    assert_eq!(help(&e), "nodes: a, host");
    let e = fails(&mut t, Op::DelNode { node: nn("host") });
    assert!(e.to_string().contains("invalid node name"), "{e}");
    assert!(matches!(fails(&mut t, Op::DelNode { node: nn("b") }), Error::NoSuchNode { .. }));
    t.apply(&Op::DelNode { node: nn("a") }).unwrap();
    t.apply(&node("a")).unwrap();
}

#[test]
fn a_veth_peer_gets_the_lower_index_and_each_end_knows_the_other() {
    let t = build(&[node("a"), veth("host", "veth0", "a", "eth0")]);
    let (near, far) = (link(&t, "host", "veth0"), link(&t, "a", "eth0"));
    assert_eq!((far.index, near.index), (1000, 1001));
    assert_eq!((near.peer_index, far.peer_index), (Some(1000), Some(1001)));
    assert_eq!(
        near.mac,
        crate::backend::kernel::link::format_mac(&crate::backend::kernel::link::stable_mac("host", "veth0"))
    );
    assert_eq!((near.kind, near.mtu), (LinkKind::Veth, 1500));
    let b = build(&[bridge("host", "br0")]);
    assert_eq!(link(&b, "host", "br0").index, 1000);
}

#[test]
fn veth_name_clashes() {
    let mut t = build(&[node("a"), veth("host", "v0", "a", "eth0")]);
    let e = fails(&mut t, veth("host", "v0", "a", "eth1"));
    assert!(e.to_string().starts_with("creating veth v0 in host"), "{e}");
    assert_eq!(errno(&e), Some(libc::EEXIST));
    let e = fails(&mut t, veth("host", "v1", "a", "eth0"));
    assert!(e.to_string().starts_with("creating veth peer eth0 in a"), "{e}");
    let e = fails(&mut t, veth("a", "x", "a", "x"));
    assert!(e.to_string().starts_with("creating veth peer x in a"), "{e}");
    assert_eq!(t.links("a").unwrap().len(), 2, "nothing made");
    let e = fails(&mut t, bridge("host", "v0"));
    assert_eq!(errno(&e), Some(libc::EEXIST));
}

#[test]
fn veth_carrier_needs_both_ends_up() {
    let mut t = build(&[node("a"), node("b"), veth("a", "x", "b", "y"), up("a", "x")]);
    let x = link(&t, "a", "x");
    assert_eq!((x.carrier, x.oper), (false, OperState::LowerLayerDown));
    assert_eq!(link(&t, "b", "y").oper, OperState::Down);
    t.apply(&up("b", "y")).unwrap();
    assert_eq!((link(&t, "a", "x").oper, link(&t, "b", "y").oper), (OperState::Up, OperState::Up));
    assert!(link(&t, "a", "x").is_oper_up());
}

#[test]
fn unknown_links_are_named_with_the_nodes_links() {
    let mut t = build(&[node("a"), veth("a", "x", "a", "y"), bridge("a", "br")]);
    for op in
        [up("a", "z"), master("a", "z", "br"), master("a", "x", "z"), addr("a", "z", "10.0.0.1/24"), del_link("a", "z")]
    {
        let e = fails(&mut t, op);
        assert!(matches!(&e, Error::NoSuchLink { link, .. } if link == "z"), "{e:?}");
        assert_eq!(help(&e), "links in a: lo, y, x, br");
    }
}

#[test]
fn deleting_one_veth_end_deletes_the_other() {
    let mut t = build(&[node("a"), veth("host", "v0", "a", "eth0")]);
    t.apply(&del_link("a", "eth0")).unwrap();
    assert_eq!(t.links("host").unwrap().len(), 1);
    assert_eq!(t.links("a").unwrap().len(), 1);
    let e = fails(&mut t, del_link("a", "lo"));
    assert_eq!(errno(&e), Some(libc::EOPNOTSUPP));
}

#[test]
fn deleting_a_node_deletes_its_veths_peers() {
    let mut t = build(&[node("a"), veth("host", "v0", "a", "eth0"), bridge("a", "br0")]);
    t.apply(&Op::DelNode { node: nn("a") }).unwrap();
    assert_eq!(t.links("host").unwrap().len(), 1);
    assert_eq!(t.node_names(), vec![nn("host")]);
}

#[test]
fn a_moved_link_arrives_down_and_bare_and_its_peer_follows() {
    let mut t = build(&[
        node("c"),
        veth("host", "brid4", "host", "veth4"),
        bridge("host", "br0"),
        addr("host", "veth4", "10.0.0.4/24"),
        up("host", "veth4"),
        master("host", "veth4", "br0"),
    ]);
    let before = link(&t, "host", "veth4").index;
    t.apply(&move_link("host", "veth4", "c", "eth0")).unwrap();
    let eth0 = link(&t, "c", "eth0");
    assert_eq!((eth0.index, eth0.admin_up, eth0.master), (before, false, None));
    assert_eq!(cidrs(&t, "c"), Vec::<String>::new());
    assert!(t.routes("host").unwrap().is_empty());
    let host = t.node("host").unwrap();
    let brid4 = host.link_named(&ln("brid4")).unwrap();
    assert_eq!(brid4.peer, Some((nn("c"), ln("eth0"))));
    assert_eq!(link(&t, "host", "brid4").peer_index, Some(before));
    // Moved again, renamed: the reference follows.
    t.apply(&node("d")).unwrap();
    t.apply(&move_link("c", "eth0", "d", "e1")).unwrap();
    assert_eq!(t.node("host").unwrap().link_named(&ln("brid4")).unwrap().peer, Some((nn("d"), ln("e1"))));
    // And deleting the far end still finds it.
    t.apply(&del_link("host", "brid4")).unwrap();
    assert_eq!(t.links("d").unwrap().len(), 1);
}

#[test]
fn move_errors() {
    let mut t = build(&[
        node("c"),
        veth("host", "v0", "c", "v1"),
        veth("host", "v2", "host", "v3"),
        bridge("host", "br0"),
        bridge("c", "v0"),
    ]);
    let e = fails(&mut t, move_link("host", "v0", "c", "v0"));
    assert_eq!(errno(&e), Some(libc::EEXIST), "{e}");
    assert_eq!(errno(&fails(&mut t, move_link("host", "lo", "c", "lo"))), Some(libc::EINVAL));
    let e = fails(&mut t, move_link("host", "br0", "c", "br0"));
    assert_eq!(errno(&e), Some(libc::EINVAL));
    assert!(help(&e).contains("bridge link cannot leave"), "{}", help(&e));
    assert!(matches!(fails(&mut t, move_link("host", "v0", "zz", "v0")), Error::NoSuchNode { .. }));
    // Into its own node: nothing, or only the rename.
    t.apply(&move_link("host", "v0", "host", "v0")).unwrap();
    t.apply(&move_link("host", "v0", "host", "w0")).unwrap();
    assert_eq!(t.node("c").unwrap().link_named(&ln("v1")).unwrap().peer, Some((nn("host"), ln("w0"))));
    let e = fails(&mut t, move_link("host", "w0", "host", "v2"));
    assert!(e.to_string().starts_with("renaming w0 to v2 in host"), "{e}");
    // The kernel backend moves, then renames: a clash at the rename leaves it moved.
    let e = fails(&mut t, move_link("host", "v2", "c", "v1"));
    assert_eq!(errno(&e), Some(libc::EEXIST));
    assert!(t.node("c").unwrap().link_named(&ln("v2")).is_some());
}

#[test]
fn bridge_ports_carrier_and_states() {
    let mut t = build(&[
        node("c"),
        bridge("host", "br0"),
        veth("host", "p0", "c", "eth0"),
        master("host", "p0", "br0"),
        up("host", "br0"),
    ]);
    let br = link(&t, "host", "br0");
    assert_eq!((br.carrier, br.oper), (false, OperState::Down), "no live port");
    assert_eq!(link(&t, "host", "p0").port_state, Some(PortState::Disabled));
    t.apply(&up("host", "p0")).unwrap();
    t.apply(&up("c", "eth0")).unwrap();
    let p0 = link(&t, "host", "p0");
    assert_eq!((p0.master, p0.port_state), (Some(br.index), Some(PortState::Forwarding)));
    assert_eq!(link(&t, "host", "br0").oper, OperState::Up);
    assert_eq!(link(&t, "c", "eth0").port_state, None);
    t.apply(&down("host", "br0")).unwrap();
    assert_eq!(link(&t, "host", "p0").port_state, Some(PortState::Disabled));
    t.apply(&del_link("host", "br0")).unwrap();
    assert_eq!(link(&t, "host", "p0").master, None);
}

#[test]
fn master_errors() {
    let mut t = build(&[veth("host", "a", "host", "b"), bridge("host", "br0"), bridge("host", "br1")]);
    let e = fails(&mut t, master("host", "a", "b"));
    assert_eq!(e.to_string(), "attaching to b in host: b is not a bridge (kind veth)");
    assert_eq!(errno(&fails(&mut t, master("host", "br1", "br0"))), Some(libc::ELOOP));
    assert_eq!(errno(&fails(&mut t, master("host", "lo", "br0"))), Some(libc::EINVAL));
    t.apply(&master("host", "a", "br0")).unwrap();
    t.apply(&master("host", "a", "br1")).unwrap();
    assert_eq!(link(&t, "host", "a").master, Some(link(&t, "host", "br1").index));
    t.apply(&Op::SetMaster { node: nn("host"), link: ln("a"), master: None }).unwrap();
    assert_eq!(link(&t, "host", "a").master, None);
}

#[test]
fn addresses_and_their_broadcast() {
    let t = build(&[
        veth("host", "a", "host", "b"),
        addr("host", "a", "10.0.0.1/24"),
        addr("host", "a", "10.0.1.1/31"),
        addr("host", "b", "192.168.1.7/32"),
    ]);
    let all = t.addresses("host").unwrap();
    let a = all.iter().find(|a| a.cidr == net("10.0.0.1/24")).unwrap();
    assert_eq!(a.broadcast, Some(ip("10.0.0.255")));
    assert_eq!(a.link_index, link(&t, "host", "a").index);
    assert!(all.iter().filter(|a| a.cidr.prefix_len() >= 31).all(|a| a.broadcast.is_none()));
}

#[test]
fn the_same_address_twice_on_a_link() {
    let mut t = build(&[veth("host", "a", "host", "b"), addr("host", "a", "10.0.0.1/24")]);
    let e = fails(&mut t, addr("host", "a", "10.0.0.1/24"));
    assert_eq!(errno(&e), Some(libc::EEXIST));
    assert!(e.to_string().starts_with("adding address to a (10.0.0.1/24) in host"), "{e}");
    // IPv4 clashes on address and prefix; another link may have it (a lint says so).
    t.apply(&addr("host", "a", "10.0.0.1/16")).unwrap();
    t.apply(&addr("host", "b", "10.0.0.1/24")).unwrap();
    t.apply(&sysctl("host", "net.ipv6.conf.a.disable_ipv6", "0")).unwrap();
    t.apply(&addr("host", "a", "fd00::1/64")).unwrap();
    assert_eq!(errno(&fails(&mut t, addr("host", "a", "fd00::1/48"))), Some(libc::EEXIST));
}

#[test]
fn ipv6_is_off_on_new_links_until_the_lab_turns_it_on() {
    let mut t = build(&[node("a"), node("b"), veth("a", "x", "b", "y"), up("a", "x"), up("b", "y")]);
    let e = fails(&mut t, addr("a", "x", "fd00::1/64"));
    assert_eq!(errno(&e), Some(libc::EACCES));
    assert!(help(&e).contains("disable_ipv6"), "{}", help(&e));
    assert_eq!(t.sysctl("a", "net.ipv6.conf.x.disable_ipv6").unwrap(), "1");
    t.apply(&sysctl("a", "net/ipv6/conf/x/disable_ipv6", "0")).unwrap();
    t.apply(&addr("a", "x", "fd00::1/64")).unwrap();
    let [m0, m1, m2, m3, m4, m5] = crate::backend::kernel::link::stable_mac("a", "x");
    let ll = format!(
        "fe80::{:x}:{:x}ff:fe{:02x}:{:x}/64",
        u16::from_be_bytes([m0 ^ 2, m1]),
        m2,
        m3,
        u16::from_be_bytes([m4, m5])
    );
    assert_eq!(cidrs(&t, "a"), ["fd00::1/64".to_string(), ll]);
    assert_eq!(route_dests(&t, "a"), ["fd00::/64", "fe80::/64"]);
    // Down: IPv6 addresses go (keep_addr_on_down = 0), and the routes.
    t.apply(&down("a", "x")).unwrap();
    assert!(cidrs(&t, "a").is_empty());
    assert!(t.routes("a").unwrap().is_empty());
}

#[test]
fn deleting_addresses() {
    let mut t = build(&[
        veth("host", "a", "host", "b"),
        up("host", "a"),
        addr("host", "a", "10.0.0.1/24"),
        addr("host", "a", "10.0.0.2/24"),
        addr("host", "a", "10.9.0.1/16"),
    ]);
    let e = fails(&mut t, del_addr("host", "a", "10.0.0.3/24"));
    assert!(matches!(&e, Error::BadAddress { reason, .. } if reason == "a in host does not have it"), "{e:?}");
    assert!(matches!(fails(&mut t, del_addr("host", "a", "10.0.0.1/16")), Error::BadAddress { .. }));
    // The primary takes its secondary with it.
    t.apply(&del_addr("host", "a", "10.0.0.1/24")).unwrap();
    assert_eq!(cidrs(&t, "host"), ["127.0.0.1/8", "10.9.0.1/16", "::1/128"]);
    assert_eq!(route_dests(&t, "host"), ["10.9.0.0/16"]);
    t.apply(&via("host", "default", "10.9.0.254")).unwrap();
    // The last IPv4 address gone, every IPv4 route through the link goes.
    t.apply(&del_addr("host", "a", "10.9.0.1/16")).unwrap();
    assert!(t.routes("host").unwrap().is_empty());
}

#[test]
fn a_secondary_goes_alone() {
    let mut t = build(&[
        veth("host", "a", "host", "b"),
        up("host", "a"),
        addr("host", "a", "10.0.0.1/24"),
        addr("host", "a", "10.0.0.2/24"),
    ]);
    t.apply(&del_addr("host", "a", "10.0.0.2/24")).unwrap();
    assert_eq!(cidrs(&t, "host"), ["127.0.0.1/8", "10.0.0.1/24", "::1/128"]);
    assert_eq!(route_dests(&t, "host"), ["10.0.0.0/24"]);
}

#[test]
fn connected_routes_follow_the_link() {
    let mut t = build(&[veth("host", "a", "host", "b"), addr("host", "a", "10.0.0.1/24")]);
    assert!(t.routes("host").unwrap().is_empty(), "down link: no route");
    t.apply(&up("host", "a")).unwrap();
    let r = &t.routes("host").unwrap()[0];
    assert_eq!((r.destination, r.gateway, r.scope, r.table), (Some(net("10.0.0.0/24")), None, Scope::Link, 254));
    assert_eq!(r.device_index, Some(link(&t, "host", "a").index));
    assert!(!link(&t, "host", "a").carrier, "listed without carrier (linkdown)");
    t.apply(&down("host", "a")).unwrap();
    assert!(t.routes("host").unwrap().is_empty());
    t.apply(&up("host", "a")).unwrap();
    assert_eq!(route_dests(&t, "host"), ["10.0.0.0/24"]);
    // A /32 has no prefix route.
    t.apply(&addr("host", "a", "10.1.1.1/32")).unwrap();
    assert_eq!(route_dests(&t, "host"), ["10.0.0.0/24"]);
}

#[test]
fn routes_via_a_gateway() {
    let mut t = pair();
    t.apply(&via("a", "default", "10.0.0.2")).unwrap();
    t.apply(&via("a", "192.168.0.0/16", "10.0.0.2")).unwrap();
    t.apply(&dev("a", "172.16.0.0/12", "eth0")).unwrap();
    assert_eq!(route_dests(&t, "a"), ["default", "10.0.0.0/24", "172.16.0.0/12", "192.168.0.0/16"]);
    let r = t.routes("a").unwrap();
    assert_eq!((r[0].gateway, r[0].scope, r[0].device_index), (Some(ip("10.0.0.2")), Scope::Universe, Some(1001)));
    assert_eq!(r[2].scope, Scope::Link);
    // A gateway behind a dev route is on-link too.
    t.apply(&via("a", "198.18.0.0/15", "172.16.0.9")).unwrap();
}

#[test]
fn route_errors() {
    let mut t = pair();
    let e = fails(&mut t, via("a", "default", "10.9.9.9"));
    assert_eq!(errno(&e), Some(libc::ENETUNREACH));
    assert!(help(&e).contains("not on any subnet of a"), "{}", help(&e));
    assert!(e.to_string().starts_with("adding route default via 10.9.9.9 in a"), "{e}");
    t.apply(&via("a", "default", "10.0.0.2")).unwrap();
    // Only on-link routes resolve a gateway, not the default route.
    assert_eq!(errno(&fails(&mut t, via("a", "10.5.0.0/16", "10.9.9.9"))), Some(libc::ENETUNREACH));
    assert_eq!(errno(&fails(&mut t, via("a", "10.5.0.0/16", "10.0.0.1"))), Some(libc::EINVAL), "own address");
    assert_eq!(errno(&fails(&mut t, via("a", "default", "10.0.0.2"))), Some(libc::EEXIST));
    assert_eq!(errno(&fails(&mut t, dev("a", "10.0.0.0/24", "eth0"))), Some(libc::EEXIST), "the connected one");
    assert!(matches!(fails(&mut t, dev("a", "10.6.0.0/16", "nope")), Error::NoSuchLink { .. }));
    let e = fails(&mut t, via("a", "10.6.0.0/16", "fd00::1"));
    assert!(matches!(e, Error::BadAddress { expected: "route", .. }), "{e:?}");
    t.apply(&down("a", "lo")).unwrap();
    assert_eq!(errno(&fails(&mut t, dev("a", "10.7.0.0/16", "lo"))), Some(libc::ENETDOWN));
    let e = fails(&mut t, Op::DelRoute { node: nn("a"), dest: dest("10.8.0.0/16"), table: None });
    assert_eq!(errno(&e), Some(libc::ESRCH));
    assert!(e.to_string().starts_with("deleting route 10.8.0.0/16 in a"), "{e}");
}

#[test]
fn deleting_routes_and_a_link_going_down() {
    let mut t = pair();
    t.apply(&via("a", "default", "10.0.0.2")).unwrap();
    t.apply(&Op::DelRoute { node: nn("a"), dest: None, table: None }).unwrap();
    assert_eq!(route_dests(&t, "a"), ["10.0.0.0/24"]);
    // A connected route can be deleted; it comes back with the link.
    t.apply(&Op::DelRoute { node: nn("a"), dest: dest("10.0.0.0/24"), table: None }).unwrap();
    assert!(t.routes("a").unwrap().is_empty());
    t.apply(&down("a", "eth0")).unwrap();
    t.apply(&up("a", "eth0")).unwrap();
    t.apply(&via("a", "default", "10.0.0.2")).unwrap();
    t.apply(&down("a", "eth0")).unwrap();
    assert!(t.routes("a").unwrap().is_empty(), "down: every route through it goes");
    assert_eq!(cidrs(&t, "a"), ["10.0.0.1/24"], "IPv4 addresses stay");
}

#[test]
fn sysctls() {
    let mut t = build(&[node("r"), veth("r", "x", "r", "y")]);
    assert_eq!(t.sysctl("r", "net.ipv4.ip_forward").unwrap(), "0");
    assert_eq!(t.sysctl("r", "net.ipv6.conf.default.disable_ipv6").unwrap(), "1");
    assert_eq!(t.sysctl("r", "net.ipv6.conf.lo.disable_ipv6").unwrap(), "0");
    t.apply(&sysctl("r", "net.ipv4.ip_forward", "1")).unwrap();
    assert_eq!(t.sysctl("r", "net/ipv4/ip_forward").unwrap(), "1");
    assert_eq!(t.sysctl("r", "net.ipv4.conf.x.forwarding").unwrap(), "1");
    assert_eq!(t.sysctl("host", "net.ipv4.ip_forward").unwrap(), "0");
    t.apply(&sysctl("r", "net.ipv4.conf.x.rp_filter", "2")).unwrap();
    assert_eq!(t.sysctl("r", "net.ipv4.conf.x.rp_filter").unwrap(), "2");
    let e = t.sysctl("r", "net.core.somaxconn").unwrap_err();
    assert_eq!(e.to_string(), "the plan cannot know net.core.somaxconn's value in r");
    assert_eq!(e.class(), crate::ErrorClass::Environment);
    assert!(matches!(fails(&mut t, sysctl("r", "kernel.hostname", "x")), Error::BadSysctl { .. }));
    let e = fails(&mut t, sysctl("r", "net.ipv4.conf.nope.forwarding", "1"));
    assert!(e.to_string().contains("no such sysctl (in r)"), "{e}");
    assert!(t.sysctl("r", "net.ipv4.conf.nope.forwarding").is_err());
    assert_eq!(t.node("r").unwrap().sysctls.len(), 2);
    // A link made after the default changed starts with IPv6 on.
    t.apply(&sysctl("r", "net.ipv6.conf.default.disable_ipv6", "0")).unwrap();
    t.apply(&bridge("r", "br0")).unwrap();
    assert_eq!(t.sysctl("r", "net.ipv6.conf.br0.disable_ipv6").unwrap(), "0");
}

#[test]
fn files_hostname_firewall_and_programs() {
    let mut t = build(&[node("c")]);
    assert_eq!(
        t.file("c", EtcFile::ResolvConf).unwrap().as_deref(),
        Some(crate::backend::kernel::sandbox::NO_NAMESERVER)
    );
    assert!(matches!(t.file("c", EtcFile::Hosts), Err(Error::NotInPlan { .. })));
    let write = |node: &str, text: &str| Op::WriteFile { node: nn(node), file: EtcFile::ResolvConf, text: text.into() };
    t.apply(&write("host", "nameserver 10.0.0.53")).unwrap();
    assert_eq!(t.file("c", EtcFile::ResolvConf).unwrap().as_deref(), Some("nameserver 10.0.0.53\n"));
    t.apply(&write("c", "nameserver 8.8.8.8\n")).unwrap();
    assert_eq!(t.file("c", EtcFile::ResolvConf).unwrap().as_deref(), Some("nameserver 8.8.8.8\n"));
    assert_eq!(t.hostname("c").unwrap(), "netlab");
    t.apply(&Op::SetHostname { node: nn("c"), name: "web-1".into() }).unwrap();
    assert_eq!(t.hostname("c").unwrap(), "web-1");
    let e = fails(&mut t, Op::SetHostname { node: nn("c"), name: "a b".into() });
    assert!(matches!(e, Error::BadNodeName { .. }));
    let change = crate::model::firewall::FirewallChange::ChainPolicy(
        crate::model::firewall::FilterChain::Forward,
        crate::model::firewall::Policy::Drop,
    );
    t.apply(&Op::Firewall { node: nn("c"), change: change.clone() }).unwrap();
    t.apply(&Op::Exec { node: nn("c"), command: "ip -br link".into() }).unwrap();
    let c = t.node("c").unwrap();
    assert_eq!((c.firewall.clone(), c.execs.clone()), (vec![change], vec!["ip -br link".to_string()]));
}

#[test]
fn servers_bind_anywhere_in_an_up_los_prefix() {
    let mut t = pair();
    let http = |node: &str, addr: &str| Op::StartServer {
        node: nn(node),
        server: ServerSpec::Http { addr: addr.parse().unwrap(), body: String::new(), status: 200 },
    };
    // The host's lo is up: 127.0.0.0/8 is a local route, as in the kernel.
    t.apply(&http("host", "127.0.0.53:53")).unwrap();
    t.apply(&http("host", "127.255.0.1:80")).unwrap();
    // a's lo is down; and ::1 is one address, not a prefix.
    assert!(t.apply(&http("a", "127.0.0.53:53")).is_err());
    t.apply(&up("a", "lo")).unwrap();
    t.apply(&http("a", "127.0.0.53:53")).unwrap();
    assert!(t.apply(&http("a", "[::2]:80")).is_err());
}

#[test]
fn servers_bind_like_sockets() {
    let mut t = pair();
    let http = |addr: &str| Op::StartServer {
        node: nn("a"),
        server: ServerSpec::Http { addr: addr.parse().unwrap(), body: "hi".into(), status: 200 },
    };
    let dns = |addr: &str| Op::StartServer {
        node: nn("a"),
        server: ServerSpec::Dns { addr: addr.parse().unwrap(), records: vec![] },
    };
    let e = fails(&mut t, http("10.0.0.9:80"));
    assert_eq!(errno(&e), Some(libc::EADDRNOTAVAIL));
    assert_eq!(help(&e), "a has no address 10.0.0.9: add it with addr() first");
    t.apply(&http("10.0.0.1:80")).unwrap();
    let e = fails(&mut t, http("0.0.0.0:80"));
    assert_eq!(errno(&e), Some(libc::EADDRINUSE));
    assert!(e.to_string().starts_with("binding HTTP server on 0.0.0.0:80 in a"), "{e}");
    t.apply(&http("[::]:80")).unwrap();
    t.apply(&dns("0.0.0.0:53")).unwrap();
    t.apply(&http("0.0.0.0:8080")).unwrap();
    let listed: Vec<String> = t.listening("a").unwrap().iter().map(|l| format!("{} {}", l.proto, l.local)).collect();
    assert_eq!(listed, ["tcp 10.0.0.1:80", "tcp [::]:80", "tcp 0.0.0.0:8080", "udp 0.0.0.0:53"]);
}

#[test]
fn lints_overlapping_subnets_and_duplicate_addresses() {
    let mut t = build(&[
        node("a"),
        node("b"),
        node("c"),
        bridge("host", "br0"),
        veth("host", "pa", "a", "eth0"),
        veth("host", "pb", "b", "eth0"),
        veth("host", "pc", "c", "eth0"),
        master("host", "pa", "br0"),
        master("host", "pb", "br0"),
        addr("a", "eth0", "10.0.0.5/24"),
        addr("b", "eth0", "10.0.0.5/24"),
        addr("c", "eth0", "10.0.0.5/24"),
    ]);
    let lints = t.lints();
    assert_eq!(lints.len(), 1, "{lints:?}");
    assert_eq!(lints[0].kind, LintKind::DuplicateAddress);
    assert_eq!(lints[0].nodes, vec![nn("a"), nn("b")], "c is on a segment of its own");
    assert!(lints[0].message.contains("eth0 in a and eth0 in b"), "{}", lints[0].message);
    t.apply(&veth("a", "x1", "a", "x2")).unwrap();
    t.apply(&addr("a", "x1", "10.0.0.9/16")).unwrap();
    let overlap: Vec<Lint> = t.lints().into_iter().filter(|l| l.kind == LintKind::OverlappingSubnets).collect();
    assert_eq!(overlap.len(), 1);
    assert!(overlap[0].message.starts_with("a: 10.0.0.5/24 on eth0 and 10.0.0.9/16 on x1"), "{}", overlap[0].message);
}

#[test]
fn segments_join_veths_and_bridge_ports() {
    let t = build(&[
        node("a"),
        bridge("host", "br0"),
        veth("host", "pa", "a", "eth0"),
        master("host", "pa", "br0"),
        veth("host", "x", "host", "y"),
    ]);
    let segs = t.segments();
    let names: Vec<Vec<String>> = segs.iter().map(|s| s.iter().map(|(n, l)| format!("{n}/{l}")).collect()).collect();
    assert_eq!(
        names,
        vec![
            vec!["a/eth0".to_string(), "host/br0".into(), "host/pa".into()],
            vec!["a/lo".into()],
            vec!["host/lo".into()],
            vec!["host/x".into(), "host/y".into()],
        ]
    );
}

fn vlan_add(node: &str, dev: &str, vid: u16, pvid: bool, untagged: bool) -> Op {
    Op::AddBridgeVlan { node: nn(node), dev: ln(dev), vid, pvid, untagged, bridge_self: false }
}

fn vlans(t: &Topology, node: &str) -> Vec<(String, u16, bool, bool)> {
    let links = t.links(node).unwrap();
    let name = |i: u32| links.iter().find(|l| l.index == i).map(|l| l.name.clone()).unwrap_or_default();
    t.bridge_vlans(node).unwrap().iter().map(|v| (name(v.link_index), v.vid, v.pvid, v.untagged)).collect()
}

/// As Debian's 6.1 kernel lists them (`bridge vlan show`): ports join with the
/// default pvid; a new pvid takes the flag from the old one, which stays untagged;
/// a new default pvid replaces the old one where it is still as the bridge set it.
#[test]
fn bridge_vlans_as_the_kernel_lists_them() {
    let t = build(&[
        node("sw"),
        bridge("sw", "br0"),
        veth("sw", "p1", "sw", "q1"),
        veth("sw", "p2", "sw", "q2"),
        master("sw", "p1", "br0"),
        master("sw", "p2", "br0"),
        vlan_add("sw", "p1", 10, true, true),
        vlan_add("sw", "p2", 20, false, false),
        Op::AddBridgeVlan { node: nn("sw"), dev: ln("br0"), vid: 30, pvid: false, untagged: false, bridge_self: true },
        Op::SetBridge {
            node: nn("sw"),
            bridge: ln("br0"),
            opts: crate::model::BridgeOpts { default_pvid: Some(5), ..Default::default() },
        },
    ]);
    let s = |n: &str| n.to_string();
    assert_eq!(
        vlans(&t, "sw"),
        [
            (s("br0"), 5, true, true),
            (s("br0"), 30, false, false),
            (s("p1"), 1, false, true),
            (s("p1"), 10, true, true),
            (s("p2"), 5, true, true),
            (s("p2"), 20, false, false),
        ]
    );
    let mut t = t;
    let e = fails(&mut t, Op::DelBridgeVlan { node: nn("sw"), dev: ln("q1"), vid: 1, bridge_self: false });
    assert!(e.to_string().contains("neither a bridge nor a bridge's port"), "{e}");
    t.apply(&Op::SetMaster { node: nn("sw"), link: ln("p1"), master: None }).unwrap();
    assert!(vlans(&t, "sw").iter().all(|v| v.0 != "p1"), "a port leaving the bridge leaves its VLANs");
}

/// A bond takes only a port that is down and opens it itself; the ports take its
/// MAC address; the first live port is active until it fails.
#[test]
fn a_bond_fails_over_to_its_next_live_port() {
    let spec = crate::model::LinkSpec::Bond(crate::model::BondSpec {
        mode: crate::model::BondMode::ActiveBackup,
        miimon: 100,
    });
    let mut t = build(&[
        node("a"),
        node("b"),
        veth("a", "eth0", "b", "eth0"),
        veth("a", "eth1", "b", "eth1"),
        up("b", "eth0"),
        up("b", "eth1"),
        Op::AddLink { node: nn("a"), name: ln("bond0"), spec, attrs: Default::default() },
        master("a", "eth0", "bond0"),
        master("a", "eth1", "bond0"),
        up("a", "bond0"),
    ]);
    let bond = link(&t, "a", "bond0");
    assert!(bond.carrier && bond.oper == OperState::Up, "{bond:?}");
    assert_eq!(link(&t, "a", "eth0").mac, bond.mac, "the port took the bond's address");
    assert!(link(&t, "a", "eth0").admin_up, "the bond opened its port");
    let active = |t: &Topology| match link(t, "a", "bond0").details {
        Some(crate::model::LinkDetails::Bond { active, .. }) => active,
        other => panic!("{other:?}"),
    };
    assert_eq!(active(&t), Some(link(&t, "a", "eth0").index));
    t.apply(&down("b", "eth0")).unwrap(); // the far end: eth0 loses its carrier
    assert_eq!(active(&t), Some(link(&t, "a", "eth1").index));
    t.apply(&up("b", "eth0")).unwrap();
    assert_eq!(active(&t), Some(link(&t, "a", "eth1").index), "no primary: the active port stays");
    t.apply(&down("b", "eth1")).unwrap();
    t.apply(&down("b", "eth0")).unwrap();
    assert_eq!(active(&t), None);
    assert!(!link(&t, "a", "bond0").carrier);
    // An up link is refused, as the kernel refuses it.
    t.apply(&veth("a", "eth2", "b", "eth2")).unwrap();
    t.apply(&up("a", "eth2")).unwrap();
    let e = fails(&mut t, master("a", "eth2", "bond0"));
    assert_eq!(errno(&e), Some(libc::EPERM), "{e}");
    assert!(help(&e).contains("down(node, \"eth2\") first"), "{}", help(&e));
}

fn advertise(node: &str, link: &str, prefix: &str) -> Op {
    let ra = crate::model::RouterAdvert { prefixes: vec![net(prefix)], default_route: true };
    Op::Advertise { node: nn(node), link: ln(link), ra }
}

#[test]
fn slaac_gives_a_host_an_address_and_a_default_route_via_the_routers_link_local() {
    let mut t = build(&[
        node("r"),
        node("h"),
        veth("h", "eth0", "r", "eth1"),
        sysctl("h", "net.ipv6.conf.all.disable_ipv6", "0"),
        sysctl("r", "net.ipv6.conf.eth1.disable_ipv6", "0"),
        advertise("r", "eth1", "2001:db8:1::/64"),
        up("h", "eth0"),
    ]);
    let slaac = |t: &Topology| -> Vec<String> {
        t.addresses("h").unwrap().iter().filter(|a| a.flags.dynamic).map(|a| a.cidr.to_string()).collect()
    };
    assert!(slaac(&t).is_empty(), "no carrier yet");
    t.apply(&up("r", "eth1")).unwrap();
    let eui = eui64(&crate::backend::kernel::link::stable_mac("h", "eth0"));
    let mut want = [0u8; 16];
    want[..8].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0]);
    want[8..].copy_from_slice(&eui);
    assert_eq!(slaac(&t), [format!("{}/64", std::net::Ipv6Addr::from(want))]);
    let r = t.node("r").unwrap();
    let router = t.link_local(r, r.link(&ln("eth1")).unwrap()).unwrap().addr();
    let routes = t.routes("h").unwrap();
    let default = routes.iter().find(|x| x.destination.is_none()).expect("a default route");
    assert_eq!((default.gateway, default.proto.as_str(), default.metric), (Some(router), "ra", Some(1024)));
    assert!(routes.iter().any(|x| x.destination == Some(net("2001:db8:1::/64")) && x.proto == "kernel"));
    // A router (forwarding on) takes no advertisements; accept_ra 2 does.
    t.apply(&sysctl("h", "net.ipv6.conf.all.forwarding", "1")).unwrap();
    assert!(slaac(&t).is_empty());
    t.apply(&sysctl("h", "net.ipv6.conf.eth0.accept_ra", "2")).unwrap();
    assert_eq!(slaac(&t).len(), 1);
    // One sender per link.
    assert_eq!(errno(&fails(&mut t, advertise("r", "eth1", "2001:db8:2::/64"))), Some(libc::EEXIST));
}

#[test]
fn a_link_local_address_the_lab_gave_another_node_fails_dad() {
    let mut t = build(&[
        node("a"),
        node("b"),
        veth("a", "x", "b", "y"),
        sysctl("b", "net.ipv6.conf.all.disable_ipv6", "0"),
        sysctl("a", "net.ipv6.conf.x.disable_ipv6", "0"),
        up("a", "x"),
        up("b", "y"),
    ]);
    let b = t.node("b").unwrap();
    let ll = t.link_local(b, b.link(&ln("y")).unwrap()).unwrap();
    let flags = |t: &Topology| t.addresses("b").unwrap().iter().find(|a| a.cidr == ll).unwrap().flags.names();
    assert!(flags(&t).is_empty());
    t.apply(&addr("a", "x", &ll.to_string())).unwrap();
    assert_eq!(flags(&t), ["dadfailed", "tentative"]);
}
