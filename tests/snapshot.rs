//! `netlab sh SCRIPT --state FILE`: a bash script of `ip` commands runs in a fresh
//! sandbox, and the snapshot it writes holds exactly what the script built, however
//! it was written; `diff` names the one thing that differs; and nothing is left on
//! the machine whatever the script's exit code.

mod common;

use std::path::PathBuf;

use common::{decode, machine_state, netlab};
use netlab_runtime::snapshot::{diff, Link, NodeState, Snapshot};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netlab-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `netlab sh` on `script` (written to NAME.sh) with --state NAME.json and
/// the given sysctls; returns the exit code, output and the snapshot.
fn sh(name: &str, script: &str, sysctls: &[&str]) -> (i32, String, Snapshot) {
    let dir = temp_dir();
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, script).expect("write script");
    let state = dir.join(format!("{name}.json"));
    let mut cmd = netlab();
    cmd.arg("sh").arg(&path).arg("--state").arg(&state);
    for s in sysctls {
        cmd.arg("--sysctl").arg(s);
    }
    let (code, out, err) = decode(cmd.output().expect("netlab runs"));
    let text = std::fs::read_to_string(&state).unwrap_or_else(|e| panic!("no state file ({e}):\n{out}\n{err}"));
    let snap = Snapshot::from_json(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"));
    (code, format!("{out}{err}"), snap)
}

const SYSCTLS: &[&str] = &["a:net.ipv4.ip_forward", "b:net.ipv4.ip_forward", "host:net.ipv4.ip_forward"];

/// Two nodes joined by a veth with addresses and a route, a bridge in the host with
/// a port (a veth to a), forwarding on in a, a's own resolv.conf and a MASQUERADE
/// rule, b's own hostname (its UTS namespace where netlab publishes a node's); and
/// c and d joined by a veth whose ends have the same ifindexes as a's
/// and b's, so only the peer's namespace tells the pairs apart.
const SCRIPT: &str = r#"set -e
ip netns add a
ip netns add b
ip netns add c
ip netns add d
ip link add va netns a type veth peer name vb netns b
ip link add x netns c type veth peer name y netns d
ip -n a addr add 10.0.0.1/24 dev va
ip -n b addr add 10.0.0.2/24 dev vb
ip -n a link set lo up
ip -n a link set va up
ip -n b link set vb up
ip -n b route add 10.9.0.0/16 via 10.0.0.1
ip link add br0 type bridge
ip link add vh type veth peer name eth0 netns a
ip link set vh master br0
ip link set br0 up
ip link set vh up
ip -n a link set eth0 up
ip addr add 10.1.0.1/24 dev br0
ip netns exec a sysctl -qw net.ipv4.ip_forward=1
mkdir -p /etc/netns/a
echo "nameserver 192.0.2.53" > /etc/netns/a/resolv.conf
ip netns exec a iptables -t nat -A POSTROUTING -s 10.0.0.0/24 -j MASQUERADE
mkdir -p /run/netlab/uts && touch /run/netlab/uts/b
unshare --uts=/run/netlab/uts/b hostname node-b
"#;

/// The same network, written differently: other order, the veths made from their
/// other ends, `ip netns exec` instead of `-n`, the bridge up before its port.
const SCRIPT_REORDERED: &str = r#"set -e
for n in d c b a; do ip netns add $n; done
mkdir -p /etc/netns/a
printf 'nameserver 192.0.2.53\n' > /etc/netns/a/resolv.conf
ip link add br0 type bridge
ip link set br0 up
ip addr add 10.1.0.1/24 dev br0
ip -n d link add y type veth peer name x netns c
ip -n b link add vb type veth peer name va netns a
ip netns exec a ip link add eth0 type veth peer name vh netns 1
ip netns exec a iptables -t nat -A POSTROUTING -s 10.0.0.0/24 -j MASQUERADE
ip netns exec b ip link set vb up
ip netns exec b ip addr add 10.0.0.2/24 dev vb
ip netns exec a ip addr add 10.0.0.1/24 dev va
ip netns exec a ip link set va up
ip netns exec b ip route add 10.9.0.0/16 via 10.0.0.1 dev vb
ip netns exec a ip link set eth0 up
ip link set vh up
ip link set vh master br0
ip netns exec a ip link set lo up
echo 1 | ip netns exec a tee /proc/sys/net/ipv4/ip_forward > /dev/null
mkdir -p /run/netlab/uts && touch /run/netlab/uts/b
unshare --uts=/run/netlab/uts/b sh -c 'hostname node-b'
"#;

fn node<'a>(snap: &'a Snapshot, name: &str) -> &'a NodeState {
    snap.nodes.get(name).unwrap_or_else(|| panic!("no node {name} in {:?}", snap.nodes.keys()))
}

fn link<'a>(snap: &'a Snapshot, node_name: &str, name: &str) -> &'a Link {
    let n = node(snap, node_name);
    n.links.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("no link {name} in {node_name}: {:?}", n.links))
}

fn has_address(snap: &Snapshot, node_name: &str, dev: &str, cidr: &str) -> bool {
    node(snap, node_name).addresses.iter().any(|a| a.dev == dev && a.cidr == cidr)
}

#[test]
fn a_scripts_snapshot_holds_what_it_built() {
    let (code, out, snap) = sh("facts", SCRIPT, SYSCTLS);
    assert_eq!(code, 0, "{out}");
    assert_eq!(snap.version, 1);
    assert_eq!(snap.nodes.keys().collect::<Vec<_>>(), ["a", "b", "c", "d", "host"]);

    // Veths: peers by node and name, even where ifindexes collide (va/vb and x/y).
    let va = link(&snap, "a", "va");
    assert_eq!((va.kind.as_str(), va.admin_up, va.oper.as_str()), ("veth", true, "UP"), "{va:?}");
    assert_eq!(va.peer.as_deref(), Some("b/vb"));
    assert_eq!(link(&snap, "b", "vb").peer.as_deref(), Some("a/va"));
    assert_eq!(link(&snap, "c", "x").peer.as_deref(), Some("d/y"));
    assert_eq!(link(&snap, "d", "y").peer.as_deref(), Some("c/x"));
    let x = link(&snap, "c", "x");
    assert_eq!((x.admin_up, x.oper.as_str()), (false, "DOWN"), "{x:?}");
    assert_eq!(link(&snap, "a", "eth0").peer.as_deref(), Some("host/vh"));
    assert_eq!(link(&snap, "host", "vh").peer.as_deref(), Some("a/eth0"));

    // The bridge and its port.
    let br0 = link(&snap, "host", "br0");
    assert_eq!((br0.kind.as_str(), br0.admin_up, br0.oper.as_str()), ("bridge", true, "UP"), "{br0:?}");
    assert_eq!(link(&snap, "host", "vh").master.as_deref(), Some("br0"));
    assert_eq!(link(&snap, "a", "va").master, None);

    // Addresses, the link-local ones without their MAC.
    assert!(has_address(&snap, "a", "va", "10.0.0.1/24"));
    assert!(has_address(&snap, "b", "vb", "10.0.0.2/24"));
    assert!(has_address(&snap, "host", "br0", "10.1.0.1/24"));
    assert!(has_address(&snap, "a", "va", "fe80::mac/64"), "{:?}", node(&snap, "a").addresses);
    assert!(!snap.to_json().contains("index"));

    // Routes of the main table, the script's and the kernel's.
    let b = node(&snap, "b");
    let route = b.routes.iter().find(|r| r.dst == "10.9.0.0/16").unwrap_or_else(|| panic!("{:?}", b.routes));
    assert_eq!((route.via.as_deref(), route.dev.as_deref()), (Some("10.0.0.1"), Some("vb")));
    assert!(b.routes.iter().any(|r| r.dst == "10.0.0.0/24" && r.dev.as_deref() == Some("vb") && r.scope == "link"));

    // Hostnames: b's own, the others the sandbox's.
    assert_eq!(node(&snap, "b").hostname, "node-b");
    assert_eq!(node(&snap, "a").hostname, node(&snap, "host").hostname);
    assert_ne!(node(&snap, "a").hostname, "node-b");

    // Sysctls asked for, per node; per-node files; firewall.
    let ip_forward = |n: &str| node(&snap, n).sysctls.get("net.ipv4.ip_forward").cloned().flatten();
    assert_eq!(ip_forward("a").as_deref(), Some("1"));
    assert_eq!(ip_forward("b").as_deref(), Some("0"));
    assert_eq!(ip_forward("host").as_deref(), Some("0"));
    assert!(node(&snap, "c").sysctls.is_empty());
    assert_eq!(node(&snap, "a").resolv_conf.as_deref(), Some("nameserver 192.0.2.53\n"));
    assert_eq!(node(&snap, "b").resolv_conf, None);
    let fw = node(&snap, "a").firewall.as_ref().expect("nft is installed");
    assert!(fw.nat.contains(&"-A POSTROUTING -s 10.0.0.0/24 -j MASQUERADE".to_string()), "{:?}", fw.nat);
    assert!(!node(&snap, "b").firewall.as_ref().unwrap().nat.iter().any(|l| l.starts_with("-A")));
}

#[test]
fn the_same_network_written_differently_has_the_same_snapshot_and_one_change_is_named() {
    let (code, out, first) = sh("first", SCRIPT, SYSCTLS);
    assert_eq!(code, 0, "{out}");
    let (code, out, second) = sh("reordered", SCRIPT_REORDERED, SYSCTLS);
    assert_eq!(code, 0, "{out}");
    assert_eq!(diff(&first, &second), Vec::<String>::new());
    assert_eq!(first, second);

    let changed = SCRIPT.replace("10.0.0.2/24 dev vb", "10.0.0.3/24 dev vb");
    let (code, out, third) = sh("changed", &changed, SYSCTLS);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        diff(&first, &third),
        vec!["b: address 10.0.0.2/24 dev vb only in the first", "b: address 10.0.0.3/24 dev vb only in the second"]
    );
}

#[test]
fn the_scripts_exit_code_is_netlabs_and_nothing_is_left() {
    let before = machine_state();
    let dir = temp_dir();
    let path = dir.join("exit3.sh");
    std::fs::write(
        &path,
        "ip netns add zz\nip link add dummyzz type dummy\nip link add vzz type veth peer name vzz1 netns zz\nexit 3\n",
    )
    .unwrap();
    let (code, out, err) = decode(netlab().arg("sh").arg(&path).output().expect("netlab runs"));
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(before, machine_state(), "the machine changed");

    let (code, _, err) = decode(netlab().arg("sh").arg(dir.join("no-such-script.sh")).output().unwrap());
    assert_eq!(code, 2, "{err}");
}
