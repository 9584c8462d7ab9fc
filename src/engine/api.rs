//! The functions a lab can call: one line of usage and one of meaning each. Used for
//! error help ("usage: ...") and for the reference in the book (`netlab functions`).

pub struct FnDoc {
    pub name: &'static str,
    pub usage: &'static str,
    pub doc: &'static str,
}

macro_rules! docs {
    ($( $name:literal : $usage:literal => $doc:literal ;)*) => {
        pub const FUNCTIONS: &[FnDoc] = &[ $( FnDoc { name: $name, usage: $usage, doc: $doc }, )* ];
    };
}

docs! {
    "exercise": "exercise(\"Title\")  or  exercise(\"Title\", #{summary: \"what the student must do\"})" => "Marks the file as an exercise (first, before any step): its statements build the starting state, its task()s are graded after a student's solution (`netlab grade`, `netlab run --solution`); a plain `netlab run` grades the starting state (every task \"not yet\").";
    "task": "task(\"title\", #{points: 2, hints: [\"first hint\", \"second hint\"]}, || { checks })" => "An exercise's task: its closure runs only when grading, after the solution, against the current kernel state (nodes a solution made with `ip netns add NAME` are found by node(\"NAME\")). Each task is checked even when an earlier one fails: a failed check, or a node or link not there, fails the task (0 of its points, 1 unless given) with its message and the first hint; any other error in it is the exercise's mistake (exit 2 for `netlab run`). The model (`check`, `plan`) lists the tasks without running them.";
    "host": "host()" => "The lab's host: the sandbox's own network namespace (the tutorials' \"default namespace\").";
    "netns": "netns(\"name\")" => "`ip netns add name`: a new network namespace; returns its Node.";
    "del_netns": "del_netns(node)" => "`ip netns delete NAME`: the name goes and the namespace with its links (a veth takes its peer in another node along); netns(\"NAME\") can make a new one.";
    "node": "node(\"name\")" => "The Node of an existing namespace, by name.";
    "veth": "veth(node_a, \"name_a\", node_b, \"name_b\")  or  veth(node, \"name_a\", \"name_b\")" => "`ip link add name_a type veth peer name name_b netns node_b`: a veth pair, each end created in its node.";
    "bridge": "bridge(node, \"br0\")  or  bridge(node, \"br0\", #{stp: true, ageing: 300, forward_delay: 15, vlan_filtering: true, default_pvid: 1})" => "`ip link add br0 type bridge` in the node, then `ip link set br0 type bridge stp_state 1 ageing_time 30000 forward_delay 1500 vlan_filtering 1 vlan_default_pvid 1` for the options given (times in seconds; with STP on, a port forwards only after 2 × forward_delay). link() reads them back: stp, ageing, forward_delay, vlan_filtering, default_pvid. vlan_filtering and default_pvid need CONFIG_BRIDGE_VLAN_FILTERING (requires(\"bridge_vlan_filtering\")).";
    "set_bridge": "set_bridge(node, \"br0\", #{stp, ageing, forward_delay, vlan_filtering, default_pvid})" => "`ip link set br0 type bridge ...`: bridge()'s options on an existing bridge, at least one.";
    "bridge_vlan": "bridge_vlan(node, \"veth1\", 10)  or  bridge_vlan(node, \"veth1\", 10, #{pvid: true, untagged: true})" => "`bridge vlan add dev veth1 vid 10 [pvid] [untagged]`: the port carries VLAN 10 (tagged, unless untagged; pvid: untagged frames arriving belong to it, and no other VLAN of the port is pvid any more). On the bridge itself it is `... self`: the bridge's own port, where its addresses live. Ports join with VLAN 1 pvid untagged (the bridge's default_pvid). Matters once the bridge has vlan_filtering (CONFIG_BRIDGE_VLAN_FILTERING).";
    "del_bridge_vlan": "del_bridge_vlan(node, \"veth1\", 1)" => "`bridge vlan del dev veth1 vid 1` (`self` on the bridge itself).";
    "bridge_vlans": "bridge_vlans(node)" => "`bridge vlan show`, from the kernel: an array of maps {dev, vid, pvid, untagged}, one per port (or bridge) and VLAN, by ifindex and vid. Empty on a kernel without CONFIG_BRIDGE_VLAN_FILTERING.";
    "bond": "bond(node, \"bond0\", #{mode: \"active-backup\", ports: [\"eth0\", \"eth1\"], miimon: 100, mtu, mac, ...})" => "`ip link add bond0 type bond mode active-backup miimon 100`, then `ip link set PORT master bond0` for each port (a port that is up is set down first, as the bonding driver wants; it opens it again). Modes: balance-rr (the kernel's default), active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb; miimon 100 ms unless given (the kernel's 0 never notices a failed port). link() reads back mode, miimon, active (the active port) and ports; master(node, PORT, \"bond0\") adds one later (CONFIG_BONDING).";
    "wireguard": "wireguard(node, \"wg0\", #{private_key, listen_port: 51820, peers: [#{peer: [b, \"wg0\"] | public_key: \"...\", endpoint: \"198.51.100.2:51820\", allowed_ips: [\"10.2.0.0/24\"], persistent_keepalive: 25}], mtu, ...})" => "`ip link add wg0 type wireguard` and `wg set wg0 private-key <(echo KEY) listen-port 51820 peer KEY endpoint ... allowed-ips ...`. Without private_key the link gets netlab's key for it, derived from the node's and link's names: the same on every run (so plans, exports and reports are reproducible), and no secret: for labs only. A peer is a public key or another WireGuard link of the lab (its key as configured so far, else netlab's); listen_port is 51820 unless given (CONFIG_WIREGUARD).";
    "set_wireguard": "set_wireguard(node, \"wg0\", #{private_key, listen_port, peers})" => "`wg set wg0 ...` again: a new private key or port; the peers given are added or updated (their allowed IPs replaced), others stay.";
    "wg_show": "wg_show(node, \"wg0\")" => "`wg show wg0`, from the kernel: #{public_key, listen_port, peers: [#{public_key, endpoint, allowed_ips, persistent_keepalive, handshake (true once one happened), handshake_age (seconds), rx_bytes, tx_bytes}]}.";
    "wg_key": "wg_key(node, \"wg0\")" => "The public key of a WireGuard link as the lab configured it (or will: netlab's key for it), as `wg show wg0 public-key` prints it.";
    "wg_genkey": "wg_genkey(\"seed\")" => "A WireGuard private key derived from the seed (like `wg genkey`, but the same for the same seed: for labs only).";
    "wg_pubkey": "wg_pubkey(private_key)" => "The public key of a private key, as `wg pubkey` computes it.";
    "dummy": "dummy(node, \"dummy0\")  or  dummy(node, \"dummy0\", #{mtu, mac, txqueuelen, alias})" => "`ip link add dummy0 type dummy`: a link that takes addresses and drops what it sends (CONFIG_DUMMY).";
    "vlan": "vlan(node, \"eth0\", 10)  or  vlan(node, \"eth0\", 10, \"name\")  or  vlan(node, \"eth0\", 10, \"name\", #{mtu, mac, txqueuelen, alias})" => "`ip link add eth0.10 link eth0 type vlan id 10`: 802.1Q-tagged frames over the parent link; the name defaults to PARENT.ID (CONFIG_VLAN_8021Q).";
    "macvlan": "macvlan(node, \"eth0\", \"mv0\")  or  macvlan(node, \"eth0\", \"mv0\", #{mode: \"bridge\" | \"vepa\" | \"private\" | \"passthru\" | \"source\", mtu, mac, ...})" => "`ip link add mv0 link eth0 type macvlan mode bridge`: a second MAC address on the parent; mode bridge unless said (the kernel's own default, vepa, needs a hairpin switch for two macvlans to talk).";
    "vxlan": "vxlan(node, \"vx0\", #{vni: 42, remote: \"10.0.0.2\" | group: \"239.1.1.1\", local, dev: \"eth0\", dstport: 4789, mtu, ...})" => "`ip link add vx0 type vxlan id 42 remote 10.0.0.2 dev eth0 dstport 4789`: Ethernet over UDP; dstport 4789 (IANA's) unless said; a group needs dev; its MTU is dev's minus 50 (70 over IPv6).";
    "tuntap": "tuntap(node, \"tap0\")  or  tuntap(node, \"tun0\", #{mode: \"tun\" | \"tap\", mtu, mac, txqueuelen, alias})" => "`ip tuntap add dev tap0 mode tap`: a persistent TAP (Ethernet, the default) or TUN (IP) device; no program has it open, so it has no carrier (CONFIG_TUN).";
    "set_link": "set_link(node, \"link\", #{mtu: 1400, mac: \"02:00:00:00:00:01\", txqueuelen: 500, alias: \"uplink\"})" => "`ip link set link mtu 1400 address ... txqueuelen 500 alias uplink`: at least one of them.";
    "master": "master(node, \"link\", \"bridge\")" => "`ip link set link master bridge`: attach a link to a bridge.";
    "nomaster": "nomaster(node, \"link\")" => "`ip link set link nomaster`.";
    "move_link": "move_link(node, \"link\", target)  or  move_link(node, \"link\", target, \"new_name\")" => "`ip link set link netns target [name new_name]`: moves a link into another node.";
    "del_link": "del_link(node, \"link\")" => "`ip link del link` (a veth takes its peer with it).";
    "up": "up(node, \"link\")" => "`ip link set link up` (use \"lo\" for loopback).";
    "down": "down(node, \"link\")" => "`ip link set link down`.";
    "addr": "addr(node, \"link\", \"10.0.0.1/24\")" => "`ip addr add 10.0.0.1/24 dev link` (IPv6 too, without duplicate address detection).";
    "del_addr": "del_addr(node, \"link\", \"10.0.0.1/24\")" => "`ip addr del`.";
    "route": "route(node, \"default\" | \"10.1.0.0/16\", \"10.0.0.1\" | \"link\")  or  route(node, DEST, VIA, #{metric: 100, table: 100, src: \"10.0.0.2\", dev: \"eth0\", onlink: true})  or  route(node, DEST, #{type: \"blackhole\" | \"unreachable\" | \"prohibit\", metric, table})  or  route(node, DEST, [\"10.1.0.1\", #{via: \"10.2.0.1\", dev: \"eth1\", weight: 2}], #{metric, table, src})" => "`ip route add DEST via GATEWAY | dev LINK [metric M] [table T] [src S] [dev D onlink]`, or `ip route add blackhole|unreachable|prohibit DEST`, or a multipath route `ip route add DEST nexthop via GW1 weight 1 nexthop via GW2 weight 2` (two paths or more, each a gateway or #{via, dev, weight 1..256}; flows are spread by the weights); tables by number or \"main\", \"default\", \"local\".";
    "rule": "rule(node, #{from: \"10.1.0.0/24\", to, iif: \"eth1\", oif, fwmark: 1, priority: 100, table: 100})" => "`ip rule add from 10.1.0.0/24 table 100`: policy routing; without priority the kernel's own (32765, then one less each time); IPv6 when from/to are.";
    "del_rule": "del_rule(node, #{from: \"10.1.0.0/24\", table: 100})  or  del_rule(node, #{priority: 32766, table: \"main\"})" => "`ip rule del ...`: the first rule with what is given (a priority left out matches any).";
    "rules": "rules(node)" => "`ip rule` then `ip -6 rule`: an array of maps {family, priority, from, to, iif, oif, fwmark, table}, the kernel's defaults included.";
    "del_route": "del_route(node, \"default\" | \"10.1.0.0/16\")  or  del_route(node, DEST, #{table: 100})" => "`ip route del DEST [table T]`.";
    "sysctl": "sysctl(node, \"net.ipv4.ip_forward\", 1)  or  sysctl(node, \"key\")" => "Set (or read) a net.* sysctl inside the node.";
    "links": "links(node)" => "`ip -d link`: an array of maps {name, index, kind, mac, up, state, carrier, mtu, master, peer_ifindex, port_state, txqueuelen, alias, parent, ipv6}; a vlan adds vlan_id, a macvlan mode, a vxlan vni, dstport, remote, group; a bridge stp, ageing, forward_delay, vlan_filtering, default_pvid; a bond mode, miimon, active, ports.";
    "link": "link(node, \"name\")" => "One link's map (see links()).";
    "mac": "mac(node, \"link\")" => "The link's MAC address as \"aa:bb:cc:dd:ee:ff\".";
    "addrs": "addrs(node)" => "`ip addr`: an array of maps {dev, cidr, ip, prefix, broadcast, flags}; flags as `ip addr` prints them: dynamic (from a router advertisement), nodad, dadfailed, tentative.";
    "ipv6": "ipv6(node)  or  ipv6(node, \"eth0\")" => "`sysctl -w net.ipv6.conf.all.disable_ipv6=0` (or `net.ipv6.conf.eth0.disable_ipv6=0`): IPv6 on for every link of the node, those made later too (or for one link), so links get their fe80:: link-local address (EUI-64 of the MAC) and take router advertisements. netlab keeps it off on new links until the lab uses IPv6 (addr() with an IPv6 address and advertise() turn it on for their link); the readiness wait covers duplicate address detection.";
    "advertise": "advertise(router, \"eth1\", \"2001:db8:1::/64\")  or  advertise(router, \"eth1\", [\"2001:db8:1::/64\", ...], #{default_route: false})" => "Router advertisements on the link, as radvd sends them: netlab's own sender (raw ICMPv6 in the node) answers router solicitations and repeats them; each /64 prefix is on-link and autonomous (SLAAC), and the router is the hosts' default router unless default_route is false. Hosts with IPv6 on, accept_ra and forwarding off get an address from each prefix (EUI-64 of their MAC) and a default route via the router's link-local address before the next check. Turns IPv6 on for the link.";
    "routes": "routes(node)  or  routes(node, #{table: 100 | \"main\" | \"local\"})" => "`ip route [show table T]`: an array of maps {dst, via, dev, scope, type, table, metric, proto, src, linkdown, onlink, nexthops}; a multipath route's nexthops are maps {via, dev, weight, dead, linkdown} (dead: its link is down, the kernel does not use it), empty for a route with one path.";
    "neighbors": "neighbors(node)" => "`ip neigh` / `arp`: an array of maps {ip, mac, dev, state}, read from the kernel; like `ip neigh`, without NOARP entries (lo's).";
    "neigh": "neigh(node, \"10.0.0.5\", \"02:00:00:00:00:05\", #{dev: \"eth0\", state: \"permanent\" | \"reachable\" | \"stale\"})" => "`ip neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev eth0 nud permanent`: a neighbour entry by hand (taking its link down removes it, as the kernel does).";
    "del_neigh": "del_neigh(node, \"10.0.0.5\", #{dev: \"eth0\"})" => "`ip neigh del 10.0.0.5 dev eth0`.";
    "flush_neigh": "flush_neigh(node)  or  flush_neigh(node, #{dev: \"eth0\"})" => "`ip neigh flush all` / `ip neigh flush dev eth0`: the learned entries go, permanent ones stay.";
    "bridge_port": "bridge_port(node, \"veth0\", #{learning: false, flood: false, isolated: true})" => "`bridge link set dev veth0 learning off flood off isolated on`: a bridge port's options (link() reads them back: learning, flood, isolated).";
    "fdb": "fdb(node, \"br0\")" => "`bridge fdb show br br0`: the bridge's forwarding database, an array of maps {mac, dev, state (learned, static, permanent), vlan}.";
    "masquerade": "masquerade(node, \"10.0.0.0/24\")  or  masquerade(node, \"172.17.0.0/16\", #{not_oif: \"docker0\"} | #{oif: \"eth0\"})" => "`iptables -t nat -A POSTROUTING -s SRC [-o IF | ! -o IF] -j MASQUERADE` in the node: appended to iptables' own nat table, so `iptables -t nat -S` there lists it.";
    "port_forward": "port_forward(node, 80, \"192.168.15.2:80\")  or  port_forward(node, 8080, \"10.0.0.2:80\", #{iif: \"eth0\", proto: \"tcp\", local: true})" => "DNAT: `iptables -t nat -A PREROUTING [-i IF] -p tcp --dport 80 -j DNAT --to-destination ...`; `local` (default true) also forwards connections the node makes to its own addresses.";
    "forward_policy": "forward_policy(node, \"drop\" | \"accept\")" => "`iptables --policy FORWARD DROP|ACCEPT`, for routed and bridged IPv4/IPv6 traffic.";
    "forward_accept": "forward_accept(node, #{iif: \"br0\", oif: \"eth0\", src: \"10.0.0.0/24\", dst: \"...\"})" => "`iptables -A FORWARD [-i IF] [-o IF] [-s SRC] [-d DST] -j ACCEPT` (for bridged traffic iif/oif name the bridge).";
    "input_policy": "input_policy(node, \"drop\" | \"accept\")" => "`iptables --policy INPUT DROP|ACCEPT` (and ip6tables'): what reaches the node itself and no rule accepts.";
    "output_policy": "output_policy(node, \"drop\" | \"accept\")" => "`iptables --policy OUTPUT DROP|ACCEPT` (and ip6tables'): what the node sends and no rule accepts.";
    "firewall_rule": "firewall_rule(node, #{chain: \"input\", proto: \"tcp\", dport: 80, iif: \"eth0\", state: [\"new\"], src: \"10.0.0.0/24\", action: \"accept\"})" => "`iptables -A INPUT|FORWARD|OUTPUT [-s SRC] [-d DST] [-i IIF] [-o OIF] [-p PROTO] [-m conntrack --ctstate STATES] [--sport P] [--dport P] -j ACCEPT|DROP|REJECT`, appended to iptables' own filter table. Needs chain (input, forward, output) and action (accept, drop, reject; reject_with: port-unreachable (default), host-unreachable, admin-prohibited, tcp-reset); proto tcp, udp, icmp, icmpv6; sport/dport a port or \"low:high\" (tcp, udp); state one or more of new, established, related, invalid, untracked. For IPv4 and IPv6 unless src/dst or proto name one. In the forward chain it filters routed traffic; bridged traffic without br_netfilter follows forward_policy/forward_accept only.";
    "nft_file": "nft_file(node, \"office.nft\")" => "`ip netns exec NODE nft -f office.nft`: loads an nftables script, the path relative to the lab's folder; nft's own complaint about it is the lab's error, at the line. What it adds shows in nft_ruleset() and iptables_rules().";
    "iptables_restore": "iptables_restore(node, \"rules.v4\")" => "`ip netns exec NODE iptables-restore < rules.v4`: loads an iptables-save file (IPv4; the tables it names are replaced), the path relative to the lab's folder; iptables-restore's complaint is the lab's error, at the line. What it adds shows in iptables_rules() and nft_ruleset().";
    "impair": "impair(node, \"eth0\", #{delay: \"100ms\" | 100, jitter: \"10ms\", loss: \"1%\" | 1, duplicate, reorder, rate: \"10mbit\", limit: 1000})  or  impair(node, \"eth0\", #{rate: \"10mbit\", burst: 12500, latency: \"50ms\"})" => "`tc qdisc replace dev eth0 root netem delay 100ms 10ms loss 1% rate 10mbit` (CONFIG_NET_SCH_NETEM), or with a rate alone `... root tbf rate 10mbit burst 12500 latency 50ms` (CONFIG_NET_SCH_TBF): what the node sends out of the link is delayed, lost, duplicated, reordered or slowed (impair both ends for both directions). Durations are ms or strings with tc's units, percentages numbers or \"1%\", rates strings with tc's units (bit, kbit, mbit, gbit; Bps...). With netem, the rate is netem's own (a link of that speed); tbf's burst defaults to 10 ms at the rate (at least 4096 bytes), its latency to 50ms. Replaces what impair() put there before.";
    "clear_impair": "clear_impair(node, \"eth0\")" => "`tc qdisc del dev eth0 root`: the link back to the kernel's default qdisc; an error when it has none of its own.";
    "qdiscs": "qdiscs(node)" => "`tc qdisc show`, read from the kernel: the qdiscs configured in the node (the kernel's defaults left out), an array of maps {dev, kind, root}; netem adds delay, jitter (ms), loss, duplicate, reorder (%), rate (bit/s, 0: none), limit (packets); tbf rate (bit/s), burst, limit (bytes), latency (ms).";
    "expect_rtt": "expect_rtt(node, \"10.0.0.2\", #{min: 100, max: \"150ms\", count: 5})" => "`ping -c 5 10.0.0.2`: passes when the median round trip of the replies (the lower middle one) is within min and max (ms, or strings with a unit; at least one of them); each request waits up to twice max (at least 2 s) for its reply.";
    "throughput": "throughput(node, \"10.0.0.2\")  or  throughput(node, ip, #{seconds: 1, port: 5201, server: node2})" => "TCP sent from the node to ip:port for `seconds` (1), received by netlab's own sink, started for the measurement in the node that has the address (or `server`) and stopped after it, like `iperf3 -c`; returns the rate received in Mbit/s (0.0 if nothing got through).";
    "expect_throughput": "expect_throughput(node, \"10.0.0.2\", #{min: \"7mbit\", max: \"11mbit\", seconds: 1, port: 5201, server: node2})" => "Passes when the rate throughput() measures is within min and max (rates with tc's units; at least one of them).";
    "nft_ruleset": "nft_ruleset(node)" => "`nft list ruleset` inside the node.";
    "iptables_rules": "iptables_rules(node, \"nat\" | \"filter\")" => "the node's rules as `iptables -S` prints them, read from the kernel: every rule in the node, not only netlab's; an array of strings.";
    "resolv_conf": "resolv_conf(node, \"nameserver 198.51.100.53\")  or  resolv_conf(node)" => "Writes (or reads) /etc/netns/NAME/resolv.conf, where `ip netns exec NAME` finds it (the host's: /etc/resolv.conf), inside the sandbox only. Nodes start with no nameserver.";
    "hosts_file": "hosts_file(node, \"203.0.113.10 web\")  or  hosts_file(node)" => "Writes (or reads) the node's /etc/netns/NAME/hosts, as `ip netns exec` applies it.";
    "hostname": "hostname(node, \"name\")  or  hostname(node)" => "Set (or read) the node's hostname in its own UTS namespace.";
    "http_server": "http_server(node, \"0.0.0.0:80\", \"body\")  or  http_server(node, \"127.0.0.1:80\", \"body\", #{status: 404})" => "netlab's HTTP server in the node; returns a Server with .requests() and .clients() (the source addresses seen).";
    "dns_server": "dns_server(node, \"198.51.100.53:53\", #{\"example.com\": \"203.0.113.10\"})" => "netlab's DNS server in the node: A/AAAA for the names given, NXDOMAIN for others; returns a Server.";
    "udp_server": "udp_server(node, \"10.0.0.2:7\")  or  udp_server(node, \"0.0.0.0\")" => "A UDP echo server (RFC 862; port 7 unless given) in the node: every datagram goes back to its sender. Returns a Server: `requests()` lists each datagram's client address and port, `clients()` the distinct addresses (what proves NAT for UDP).";
    "listening": "listening(node)" => "The node's listening sockets (`ss -tuln`): an array of maps {proto, local, ip, port}.";
    "curl": "curl(node, \"http://example.com/\")  or  curl(node, url, #{timeout: 3})" => "An HTTP GET from inside the node, names resolved through its resolv.conf and hosts; returns #{ok, status, body, error}.";
    "expect_http": "expect_http(node, url)  or  expect_http(node, url, #{status: 200, body: \"text\", timeout: 3})" => "Passes when a GET from the node answers with the status (200) and the body contains the text; retries until the timeout.";
    "expect_tcp": "expect_tcp(node, \"10.0.0.2:80\")  or  expect_tcp(node, \"[fd00::2]:80\", #{timeout: 3})" => "`nc -z 10.0.0.2 80`: a TCP handshake from the node succeeds (retried until the timeout, 3 s); the connection is closed at once.";
    "expect_no_tcp": "expect_no_tcp(node, \"10.0.0.2:8080\")  or  expect_no_tcp(node, \"10.0.0.2:8080\", #{error: \"refused\" | \"silence\" | ..., window: 1})" => "No TCP handshake from the node within the window; with error, only for that reason (a reject's \"refused\", a drop's \"silence\").";
    "expect_udp": "expect_udp(node, \"10.0.0.2:7\")  or  expect_udp(node, \"10.0.0.2:7\", #{timeout: 3})" => "Passes once a datagram sent from the node to a UDP echo server (`udp_server`) comes back (`echo x | nc -u -w1 IP PORT`); sent every 100 ms until `timeout` (3 s). UDP has no handshake: only the echo proves the datagram arrived, and the answer came back.";
    "expect_no_udp": "expect_no_udp(node, \"10.0.0.2:7\")  or  expect_no_udp(node, \"10.0.0.2:7\", #{error: \"refused\" | \"silence\" | ..., window: 1})" => "No echo within the window; `error` requires why: \"refused\" (ICMP port unreachable: the host is there, nothing is bound to the port), \"silence\" (dropped on the way), \"unreachable\", \"host-unreachable\", \"prohibited\", or text of the error.";
    "trace": "trace(node, \"10.2.0.2\")  or  trace(node, \"10.2.0.2\", #{max_hops: 30, timeout: 0.5})" => "`traceroute -n -I DST`: the path as an array of strings, hop by hop — each router that answered \"Time to live exceeded\" (echo requests with TTL 1, 2, ...), then the destination once it answers; `\"*\"` for a hop silent for `timeout` seconds, `\"ADDR !H\"` (!N, !X, !F) where an ICMP error ended the path, `\"!REASON\"` where the node's own kernel did not send (no route).";
    "expect_path": "expect_path(node, \"10.2.0.2\", [\"10.1.0.1\", \"10.2.0.2\"])  or  expect_path(node, DST, HOPS, #{timeout: 0.5})" => "Passes if the path towards DST, as `trace` finds it, is exactly HOPS: the routers on the way, in order, then DST (as traceroute prints it). On failure it shows the path found and the first hop that differs.";
    "expect_no_http": "expect_no_http(node, url)  or  expect_no_http(node, url, #{window: 0.1, error: \"refused\"})" => "Passes when a GET from the node gets no HTTP answer within the window (0.1 s) and says why; `error` requires the reason (see expect_no_ping, and \"no-nameserver\", \"no-such-name\", \"resolve\"). A malformed URL is a script error.";
    "resolve": "resolve(node, \"example.com\")" => "The addresses the node's resolver finds for a name (an empty array if none).";
    "expect_resolve": "expect_resolve(node, \"example.com\")" => "Passes when the node can resolve the name.";
    "expect_no_resolve": "expect_no_resolve(node, \"example.com\")  or  expect_no_resolve(node, name, #{window: 0.1, error: \"no-nameserver\"})" => "Passes when the node cannot resolve the name, and says why; `error` requires the reason: \"no-nameserver\", \"no-such-name\", \"silence\", \"refused\", \"unreachable\" or \"resolve\" (any). An invalid name is a script error.";
    "ping_count": "ping_count([nodes], \"10.0.0.1\")  or  ping_count([nodes], ip, #{timeout: 1, tries: 1})  or  ping_count([nodes], [ip1, ip2], #{...})" => "Pings from every node at once (in waves when the machine's neighbour table could overflow); returns how many got a reply. With a list of addresses each node pings them one after the other (the later ones find the next hop already resolved) and the result is a list: how many got a reply from each address, in order. `tries` (1 to 10000) echo requests per node within the timeout (default: one every 100 ms).";
    "expect_ping_all": "expect_ping_all([nodes], \"10.0.0.1\")" => "Passes when every node gets a reply (all ping at once).";
    "metric": "metric(\"name\", value)" => "Records name=value for the benchmark line (written when NETLAB_RESULTS is set).";
    "wait_until": "wait_until(|| cond)  or  wait_until(|| cond, \"what\")  or  wait_until(|| cond, \"what\", #{timeout: 5, every: 0.05})" => "A check for the rare state no readiness wait covers (a program's own start-up): calls the closure every `every` seconds until it returns true; fails when `timeout` (5 s) has passed.";
    "sh": "sh(node, \"cmd args\")  or  sh(node, \"cmd\", #{timeout: 5})" => "Like exec_in, for a command that must work: returns its stdout; a non-zero exit stops the lab at the line with the command's stderr (exit 2), as a failing line stops a tutorial's reader.";
    "exec_in": "exec_in(node, \"cmd args\")  or  exec_in(node, \"cmd\", #{timeout: 5})" => "`ip netns exec node cmd args`: runs a real program in the node; returns #{code, stdout, stderr, truncated, stdout_dropped, stderr_dropped}: each stream keeps its first 8 MiB, the rest is read and counted in *_dropped (truncated: any was). `timeout` (10 s) is 0 to 86400 seconds.";
    "step": "step(\"title\", || { ... })" => "A named group of actions and checks; the report shows each step with its result and time.";
    "expect_ping": "expect_ping(node, \"10.0.0.2\")  or  expect_ping(node, \"10.0.0.2\", #{timeout: 3, size: 1400, df: true, ttl: 2, source: \"10.0.0.1\"})" => "Passes on the first echo reply; retries until the timeout (3 s). size, df, ttl and source are ping's -s (data bytes, at least 8), -M do, -t and -I; expect_no_ping takes them too. An IPv6 link-local address names its link, as ping takes it: \"fe80::1%eth0\" (expect_no_ping too).";
    "expect_no_ping": "expect_no_ping(node, \"10.0.0.2\")  or  expect_no_ping(node, \"10.0.0.2\", #{window: 0.08, error: \"unreachable\"})" => "Passes if no echo reply comes during the window (0.08 s, a request every 10 ms; it ends at once if the node has no route or an ICMP error says where the path ends, and after 30 ms once no neighbour resolution is in progress in the lab), starting from no stale neighbour entries. `error` requires the reason: \"unreachable\" (no route), \"host-unreachable\" (no ARP answer), \"prohibited\" (rejected), \"ttl-exceeded\", \"frag-needed\", \"silence\" (nothing came back), or text of the error message.";
    "expect": "expect(condition, \"what is claimed\")" => "Passes when the condition is true.";
    "requires": "requires(\"vlan\", ...)  or  requires([\"vlan\", \"netem\"])" => "Skips the rest of the lab (as skip()) unless the kernel has every feature named; the reason says what is missing (the kernel option, the module). Features: veth, bridge, bridge_vlan_filtering, vlan, vxlan, macvlan, ipvlan, bond, dummy, wireguard, gre, tun (tap), netem, tbf, htb, nftables, ipv6, br_netfilter.";
    "has": "has(\"vlan\")" => "Whether the kernel has the feature (see requires()): tried for real in a scratch namespace, once per run, never loading a module (one not loaded yet counts when the machine has it to load). netlab plan/check answer true.";
    "skip": "skip(\"reason\")" => "Ends the lab here as skipped (exit 0, counted as skipped, never as a pass): what ran before stays reported; inside a step that step is the skipped one. For what the machine cannot do, e.g. `if !has(\"vlan\") { skip(\"needs 802.1Q\") }`.";
    "expect_eq": "expect_eq(actual, expected, \"what is claimed\")" => "Passes when both values are equal.";
}

pub fn usage(name: &str) -> Option<&'static str> {
    FUNCTIONS.iter().find(|f| f.name == name).map(|f| f.usage)
}

/// The closest known function names, for "did you mean".
pub fn suggest(name: &str) -> Option<String> {
    let mut best: Vec<(f64, &str)> = FUNCTIONS
        .iter()
        .map(|f| (strsim::jaro_winkler(name, f.name), f.name))
        .filter(|(score, _)| *score > 0.8)
        .collect();
    best.sort_by(|a, b| b.0.total_cmp(&a.0));
    best.first().map(|(_, n)| format!("{n}()"))
}

/// Rhai's Rust type names, as a lab author knows them.
pub fn readable_types(sig: &str) -> String {
    sig.replace("&str | ImmutableString | String", "string")
        .replace("netlab::engine::values::NodeRef", "Node")
        .replace("rhai::FnPtr", "closure")
        .replace("ImmutableString", "string")
        .replace("&str", "string")
        .replace("i64", "int")
        .replace("f64", "float")
        .replace("rhai::Map", "map")
        .replace("rhai::Array", "array")
        .replace("()", "unit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("expect_pnig").as_deref(), Some("expect_ping()"));
        assert_eq!(suggest("vet").as_deref(), Some("veth()"));
        assert!(suggest("completely_else").is_none());
    }
}
