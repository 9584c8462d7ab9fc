//! `netlab export`: the journal of a run as a standalone bash script that builds the
//! same network with the tutorials' commands (ip.rs) and makes the same checks.
//!
//! What differs from a netlab run, and says so in the script's header: the built-in
//! servers are a python3 stand-in (standin.py, embedded); checks on values the lab
//! computed (expect, expect_eq) stay netlab's, as comments; the host is the machine's
//! own namespace, whose defaults the script leaves alone. What the script made it
//! takes back when it ends (its `undo` list), unless NETLAB_KEEP=1.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use super::ip::{iptables_commands, q, sysctl_key, Renderer};
use crate::model::firewall::{BridgeFilter, FirewallChange};
use crate::model::{Entry, Expect, Op, Probe, ServerSpec};
use crate::names::NodeName;

/// The stand-in for netlab's HTTP and DNS servers (python3, standard library only).
pub const STANDIN_PY: &str = include_str!("standin.py");

/// Deadline of a positive check, as netlab's default.
const ANSWER_SECONDS: u32 = 3;

/// The script's helpers: checks counted and printed like netlab's, the stand-in's
/// readiness wait, and the undo list.
const PRELUDE: &str = r#"STANDIN=$(mktemp -d /run/netlab-export.XXXXXX)
SERVERS=()
UNDO=()
checks=0
failed=0

# undo CMD...: CMD runs when the script ends, last recorded first, taking back what
# the script made (NETLAB_KEEP=1 keeps everything).
undo() { UNDO+=("$(printf '%q ' "$@")"); }

cleanup() {
  set +e
  if [ "${NETLAB_KEEP:-0}" = 1 ]; then
    echo "NETLAB_KEEP=1: the network stays; servers: ${SERVERS[*]:-none}; files in $STANDIN"
    return
  fi
  local i
  for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do kill "${SERVERS[i]}" 2>/dev/null; done
  for ((i = ${#UNDO[@]} - 1; i >= 0; i--)); do eval "${UNDO[i]}" >/dev/null 2>&1; done
  rm -rf "$STANDIN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now_ms() { date +%s%3N; }
pass() { checks=$((checks + 1)); echo "   ok   $1"; }
fail() { checks=$((checks + 1)); failed=$((failed + 1)); echo "   FAIL $1"; }

# answers WHAT CMD...: CMD succeeds; retried for up to 3 s while links settle
# (netlab waits for them before each check).
answers() {
  local what=$1 deadline
  deadline=$(($(now_ms) + 3000))
  shift
  until timeout 3 "$@" >"$STANDIN/out" 2>&1; do
    if (($(now_ms) >= deadline)); then
      fail "$what: $(tail -n1 "$STANDIN/out")"
      return 0
    fi
    sleep 0.1
  done
  pass "$what"
}

# path_is HOPS DST [EXEC...]: the hops towards DST, found as traceroute finds them
# (ping with TTL 1, 2, ...: "Time to live exceeded" from each router, then the
# echo reply), are HOPS (space-separated, DST last; '' prints the path up to 30
# hops). EXEC runs ping in the node.
path_is() {
  local want=$1 dst=$2 ttl hop out got="" n
  shift 2
  n=$(wc -w <<<"$want")
  ((n > 0)) || n=29
  for ((ttl = 1; ttl <= n + 1; ttl++)); do
    out=$("$@" ping -n -c1 -W1 -t "$ttl" "$dst" 2>&1) || true
    hop=$(sed -n -e 's/^From \([^ ]*\) icmp_seq.*/\1/p' -e 's/^[0-9]* bytes from \(.*\): icmp_seq.*/\1/p' <<<"$out" | head -n1)
    got="$got ${hop:-*}"
    [ "$hop" = "$dst" ] && break
  done
  echo "the path was${got}"
  [ "${got# }" = "$want" ]
}

# path_answers WHAT HOPS DST [EXEC...]: path_is, retried for up to 3 s while links settle.
path_answers() {
  local what=$1 deadline
  deadline=$(($(now_ms) + 3000))
  shift
  until path_is "$@" >"$STANDIN/out" 2>&1; do
    if (($(now_ms) >= deadline)); then
      fail "$what: $(tail -n1 "$STANDIN/out")"
      return 0
    fi
    sleep 0.1
  done
  pass "$what"
}

# no_answer WHAT CMD...: CMD gets no answer (it fails, within its own short bound).
no_answer() {
  local what=$1
  shift
  if timeout 3 "$@" >"$STANDIN/out" 2>&1; then fail "$what: got an answer"; else pass "$what"; fi
}

# http_answers WHAT STATUS TEXT CMD...: CMD, a curl that prints the status and writes
# the body to $STANDIN/body, gets STATUS and a body containing TEXT; retried for up to 3 s.
http_answers() {
  local what=$1 status=$2 text=$3 got body deadline
  deadline=$(($(now_ms) + 3000))
  shift 3
  while :; do
    rm -f "$STANDIN/body"
    got=$("$@" 2>"$STANDIN/out") || true
    body=$(cat "$STANDIN/body" 2>/dev/null; printf x)
    body=${body%x}
    if [ "$got" = "$status" ] && [[ $body == *"$text"* ]]; then
      pass "$what: $got"
      return 0
    fi
    if (($(now_ms) >= deadline)); then
      fail "$what: status ${got:-none} (expected $status) $(tail -n1 "$STANDIN/out")"
      return 0
    fi
    sleep 0.1
  done
}

# wait_listening PID t|u PORT [ip netns exec NODE]: until server PID has its socket
# (ss in the node), up to 5 s.
wait_listening() {
  local pid=$1 kind=$2 port=$3 deadline
  deadline=$(($(now_ms) + 5000))
  shift 3
  until [[ $("$@" ss -Hnpl -"$kind" "sport = :$port") == *"pid=$pid,"* ]]; do
    if ! kill -0 "$pid" 2>/dev/null || (($(now_ms) >= deadline)); then
      echo "the stand-in server $pid does not listen on port $port" >&2
      exit 1
    fi
    sleep 0.05
  done
}

# rtt_between WHAT MIN_MS MAX_MS CMD...: CMD, a ping, gets replies whose median
# round trip (the lower middle one) is within MIN_MS..MAX_MS (empty: no bound).
rtt_between() {
  local what=$1 min=$2 max=$3 median
  shift 3
  median=$({ "$@" 2>&1 || true; } | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -n |
    awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}')
  if [ -z "$median" ]; then
    fail "$what: no reply"
  elif awk -v m="$median" -v lo="$min" -v hi="$max" 'BEGIN {exit !((lo == "" || m >= lo + 0) && (hi == "" || m <= hi + 0))}'; then
    pass "$what: median $median ms"
  else
    fail "$what: median $median ms"
  fi
}

# rate_between WHAT MIN MAX CMD...: CMD, the stand-in's sender, prints the rate its
# sink received in bit/s; within MIN..MAX (empty: no bound).
rate_between() {
  local what=$1 min=$2 max=$3 rate shown
  shift 3
  if ! rate=$("$@" 2>"$STANDIN/out"); then
    fail "$what: $(tail -n1 "$STANDIN/out")"
    return 0
  fi
  shown="$(awk -v r="$rate" 'BEGIN {printf "%.1f", r / 1e6}') Mbit/s"
  if awk -v r="$rate" -v lo="$min" -v hi="$max" 'BEGIN {exit !((lo == "" || r >= lo + 0) && (hi == "" || r <= hi + 0))}'; then
    pass "$what: $shown"
  else
    fail "$what: $shown"
  fi
}

# bridged_traffic_meets_iptables [ip netns exec NODE]: whether br_netfilter hands the
# node's bridged frames to iptables' FORWARD chain; if not, netlab's nft bridge table
# stands in for the FORWARD rules, as netlab does.
# shellcheck disable=SC2120 # the host's calls have no prefix
bridged_traffic_meets_iptables() {
  local key
  for key in net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables; do
    [ "$("$@" sysctl -n "$key" 2>/dev/null || echo 0)" = 1 ] || return 1
  done
}

# save_file PATH: PATH as it was (or its absence, and its folder's) comes back at the end.
save_file() {
  local saved="$STANDIN/saved/${1//\//_}"
  mkdir -p "$STANDIN/saved"
  [ -d "${1%/*}" ] || undo rmdir "${1%/*}"
  if [ -e "$1" ] || [ -L "$1" ]; then
    mv "$1" "$saved"
    undo mv -f "$saved" "$1"
  else
    undo rm -f "$1"
  fi
}
"#;

/// The journal of a run as a bash script; `host` names the node that is the
/// machine's own namespace.
pub fn export(lab_name: &str, entries: &[Entry], host: &str) -> String {
    let mut x = Export::new(host);
    for entry in entries {
        x.entry(entry);
    }
    x.finish(lab_name)
}

struct Export {
    r: Renderer,
    body: String,
    /// netlab's bridge filter of each node, as the ops so far made it.
    filters: HashMap<String, BridgeFilter>,
    steps: usize,
    servers: usize,
    /// A UDP probe ran: the stand-in's client is needed even without a server.
    udp_probes: bool,
    /// Files, host sysctls, policies and the hostname whose earlier state the script
    /// already saved, to restore at the end.
    saved: BTreeSet<String>,
    host_nft: bool,
}

impl Export {
    fn new(host: &str) -> Export {
        Export {
            r: Renderer::new(host),
            body: String::new(),
            filters: HashMap::new(),
            steps: 0,
            servers: 0,
            udp_probes: false,
            saved: BTreeSet::new(),
            host_nft: false,
        }
    }

    fn line(&mut self, text: impl AsRef<str>) {
        self.body += text.as_ref();
        self.body.push('\n');
    }

    fn lines(&mut self, lines: Vec<String>) {
        for l in lines {
            self.line(l);
        }
    }

    fn undo(&mut self, command: String) {
        self.line(format!("undo {command}"));
    }

    fn entry(&mut self, entry: &Entry) {
        match entry {
            Entry::Step { title } => {
                self.steps += 1;
                let header = format!("── {}. {}", self.steps, one_line(title));
                self.line("");
                self.line(format!("echo {}", q(&header)));
            }
            Entry::Op { op, .. } => self.op(op),
            Entry::Probe { probe, .. } => self.probe(probe),
            Entry::Claim { title, .. } => self.line(format!("# netlab checks: {}", one_line(title))),
        }
    }

    fn op(&mut self, op: &Op) {
        let r = self.r.clone();
        let host = |n: &NodeName| r.is_host(n);
        match op {
            Op::AddNode { node } => {
                let lines = self.r.op(op);
                self.lines(lines);
                if !host(node) {
                    self.undo(format!("ip netns delete {}", q(node.as_str())));
                }
                self.filters.remove(node.as_str());
            }
            Op::DelNode { node } => {
                // netlab deletes the node's veths first, so their peers in other nodes go
                // at once (the kernel would take them a moment later).
                let ip = self.r.ip(node);
                self.line(format!(
                    "{ip} -o link show type veth | while read -r _ link _; do {ip} link del \"${{link%%@*}}\" 2>/dev/null || true; done"
                ));
                let lines = self.r.op(op);
                self.lines(lines);
                self.filters.remove(node.as_str());
            }
            Op::AddVeth { node, name, peer_node, peer } => {
                let lines = self.r.op(op);
                self.lines(lines);
                let in_host = if host(node) { Some(name) } else { host(peer_node).then_some(peer) };
                if let Some(link) = in_host {
                    self.undo(format!("ip link del {}", q(link.as_str())));
                }
                // netlab's stable MACs, so the addresses made from them (IPv6
                // link-local, SLAAC) are the lab's.
                for (n, l) in [(node, name), (peer_node, peer)] {
                    let mac = crate::backend::kernel::link::format_mac(&crate::backend::kernel::link::stable_mac(
                        n.as_str(),
                        l.as_str(),
                    ));
                    let ip = self.r.ip(n);
                    self.line(format!("{ip} link set {} address {mac}", q(l.as_str())));
                }
            }
            Op::AddBridge { node, name } | Op::AddLink { node, name, .. } => {
                let lines = self.r.op(op);
                self.lines(lines);
                if host(node) {
                    self.undo(format!("ip link del {}", q(name.as_str())));
                }
            }
            Op::MoveLink { to, new_name, .. } => {
                let lines = self.r.op(op);
                self.lines(lines);
                if host(to) {
                    self.undo(format!("ip link del {}", q(new_name.as_str())));
                }
            }
            Op::Firewall { node, change: FirewallChange::File(file) } => {
                // The file goes into the script, so the script stands alone.
                let end = delimiter("RULES", &file.text);
                let body = file.text.strip_suffix('\n').unwrap_or(&file.text);
                let exec = self.r.netns_exec(node);
                self.line(format!("# {} (beside the lab)", file.name));
                self.line(format!("{exec}{} <<'{end}'\n{body}\n{end}", file.kind.stdin_command()));
            }
            Op::Firewall { node, change } => {
                let exec = self.r.netns_exec(node);
                for cmd in iptables_commands(&change.restore_input()) {
                    if let (true, ["-P", chain, _]) =
                        (host(node), cmd.args.iter().map(String::as_str).collect::<Vec<_>>().as_slice())
                    {
                        // The machine's own policy comes back at the end.
                        if self.saved.insert(format!("{} -P {chain}", cmd.tool)) {
                            let tool = cmd.tool;
                            self.undo(format!(
                                "{tool} -P {chain} \"$({tool} -S {chain} | awk '$1 == \"-P\" {{print $3}}')\""
                            ));
                        }
                    }
                    self.line(format!("{exec}{}", cmd.line()));
                    // A node's rules go with its namespace; the host's are taken out.
                    if let (true, Some(undo)) = (host(node), cmd.undo()) {
                        self.undo(undo.line());
                    }
                }
                let filter = self.filters.entry(node.to_string()).or_default();
                if let Some(next) = change.apply_to(filter) {
                    *filter = next.clone();
                    self.bridge_table(node, &next);
                }
            }
            Op::WriteFile { node, file, text } => {
                let path = self.r.etc_path(node, *file);
                if self.saved.insert(path.clone()) {
                    self.line(format!("save_file {path}"));
                }
                let body = text.strip_suffix('\n').unwrap_or(text);
                if !body.contains('\n') {
                    let lines = self.r.op(op);
                    self.lines(lines);
                    return;
                }
                if !host(node) {
                    self.line(format!("mkdir -p /etc/netns/{}", q(node.as_str())));
                }
                // A heredoc ends the text with the newline netlab adds.
                let end = delimiter("EOF", body);
                self.line(format!("cat > {path} <<'{end}'\n{body}\n{end}"));
            }
            Op::SetSysctl { node, key, .. } if host(node) => {
                // The machine's own value comes back at the end.
                let key = sysctl_key(key);
                if self.saved.insert(format!("sysctl {key}")) {
                    self.undo(format!("sysctl -w {}\"$(sysctl -n {})\"", q(&format!("{key}=")), q(&key)));
                }
                let lines = self.r.op(op);
                self.lines(lines);
            }
            Op::SetHostname { node, .. } if host(node) => {
                if self.saved.insert("hostname".into()) {
                    self.undo("hostname \"$(hostname)\"".into());
                }
                let lines = self.r.op(op);
                self.lines(lines);
            }
            Op::SetHostname { node, .. } if !self.r.has_uts(node) => {
                let path = Renderer::uts_path(node);
                self.undo(format!("rm -f {path}"));
                let lines = self.r.op(op);
                self.lines(lines);
                self.undo(format!("umount {path}"));
            }
            Op::StartServer { node, server } => self.server(node, server),
            Op::Impair { node, link, .. } if host(node) => {
                let lines = self.r.op(op);
                self.lines(lines);
                self.undo(format!("tc qdisc del dev {} root", q(link.as_str())));
            }
            Op::Advertise { node, link, ra } => {
                self.servers += 1;
                let key = format!("net/ipv6/conf/{link}/disable_ipv6");
                let sysctl = self.r.op(&Op::SetSysctl { node: node.clone(), key, value: "0".into() });
                self.lines(sysctl);
                self.line(format!(
                    "# netlab's router advertisements on {link} in {node}: the stand-in (standin.py) sends what radvd would"
                ));
                let mut what = format!("ra {}", q(link.as_str()));
                for prefix in &ra.prefixes {
                    let _ = write!(what, " {}", prefix.trunc());
                }
                if ra.default_route {
                    what += " default";
                }
                let exec = self.r.program_exec(node);
                self.line(format!("{exec}python3 \"$STANDIN/standin.py\" {what} &"));
                self.line("SERVERS+=(\"$!\")");
            }
            Op::Exec { node, .. } => {
                // netlab runs the program as `ip netns exec` does a node's: in a mount
                // namespace of its own (exec.rs), also in the host, so what it mounts
                // (`mount -t tmpfs none /run/netns`) stays its own; without input.
                // exec_in hands the exit status to the lab, which judges it (a claim).
                let own_mounts = if host(node) { "unshare --mount --propagation slave " } else { "" };
                for l in self.r.op(op) {
                    self.line(format!("{own_mounts}{l} </dev/null || echo \"exit status $?\""));
                }
            }
            _ => {
                let lines = self.r.op(op);
                self.lines(lines);
            }
        }
    }

    /// netlab's bridge table in the node, only where br_netfilter does not already
    /// hand bridged frames to iptables (lab/firewall.rs).
    fn bridge_table(&mut self, node: &NodeName, filter: &BridgeFilter) {
        let exec = self.r.netns_exec(node);
        let end = delimiter("NFT", &filter.render_nft());
        let test = format!("bridged_traffic_meets_iptables {exec}");
        self.line(format!("if ! {}; then", test.trim_end()));
        self.line(format!("  {exec}nft -f - <<'{end}'\n{}{end}", filter.render_nft()));
        if self.r.is_host(node) && !self.host_nft {
            self.host_nft = true;
            self.line("  undo nft delete table bridge netlab_bridge");
        }
        self.line("fi");
    }

    fn server(&mut self, node: &NodeName, server: &ServerSpec) {
        self.servers += 1;
        let n = self.servers;
        let exec = self.r.program_exec(node);
        let (kind, what) = match server {
            ServerSpec::Http { addr, body, status } => {
                self.line(format!("# netlab's HTTP server in {node}: the stand-in (standin.py) on {addr}"));
                self.line(format!("printf '%s' {} > \"$STANDIN/body-{n}\"", q(body)));
                ("t", format!("http {} {status} \"$STANDIN/body-{n}\"", q(&addr.to_string())))
            }
            ServerSpec::Dns { addr, records } => {
                self.line(format!("# netlab's DNS server in {node}: the stand-in (standin.py) on {addr}"));
                let mut what = format!("dns {}", q(&addr.to_string()));
                for (name, ip) in records {
                    let _ = write!(what, " {}", q(&format!("{name}={ip}")));
                }
                ("u", what)
            }
            ServerSpec::UdpEcho { addr } => {
                self.line(format!("# netlab's UDP echo server in {node}: the stand-in (standin.py) on {addr}"));
                ("u", format!("udp-echo {}", q(&addr.to_string())))
            }
        };
        self.line(format!("{exec}python3 \"$STANDIN/standin.py\" {what} &"));
        self.line("SERVERS+=(\"$!\")");
        let ss = self.r.netns_exec(node);
        self.line(format!("wait_listening \"$!\" {kind} {} {}", server.addr().port(), ss.trim_end()).trim_end());
    }

    fn probe(&mut self, probe: &Probe) {
        match probe {
            Probe::Ping { node, dst, expect, opts } => {
                let exec = self.r.program_exec(node) + "ping" + &crate::render::ip::ping_args(opts);
                let dst = format!("{dst}{}", crate::render::ip::zone(opts));
                self.check(*expect, &format!("{node} pings {dst}"), &format!("{node} cannot ping {dst}"), |e| {
                    ping_command(&exec, &dst, e)
                });
            }
            Probe::PingAll { nodes, dst, expect } => {
                // Nodes run as plain `ip netns exec` go in one loop; the host and nodes
                // with a UTS namespace of their own get a line each.
                let (plain, own): (Vec<&NodeName>, Vec<&NodeName>) =
                    nodes.iter().partition(|n| !self.r.is_host(n) && !self.r.has_uts(n));
                for node in own {
                    self.probe(&Probe::Ping {
                        node: node.clone(),
                        dst: *dst,
                        expect: *expect,
                        opts: Default::default(),
                    });
                }
                if plain.len() < 2 {
                    for node in plain {
                        self.probe(&Probe::Ping {
                            node: node.clone(),
                            dst: *dst,
                            expect: *expect,
                            opts: Default::default(),
                        });
                    }
                    return;
                }
                let names: Vec<String> = plain.iter().map(|n| q(n.as_str())).collect();
                let exec = "ip netns exec \"$n\" ping";
                let body = match expect {
                    Some(Expect::Answer) => {
                        format!("answers \"$n pings {dst}\" {}", ping_command(exec, dst, Some(Expect::Answer)))
                    }
                    Some(Expect::NoAnswer) => format!(
                        "no_answer \"$n cannot ping {dst}\" {}",
                        ping_command(exec, dst, Some(Expect::NoAnswer))
                    ),
                    None => format!("{} || true", ping_command(exec, dst, None)),
                };
                self.line(format!("for n in {}; do\n  {body}\ndone", names.join(" ")));
            }
            Probe::Http { node, url, expect, status, body } => {
                let exec = self.r.program_exec(node);
                let url_q = q(url);
                match expect {
                    Some(Expect::Answer) => {
                        let what = q(&format!("{node} curl {url}"));
                        let text = q(body.as_deref().unwrap_or(""));
                        self.line(format!(
                            "http_answers {what} {status} {text} {exec}curl -sS -o \"$STANDIN/body\" --max-time {ANSWER_SECONDS} -w '%{{http_code}}' {url_q}"
                        ));
                    }
                    Some(Expect::NoAnswer) => {
                        let what = q(&format!("{node} cannot curl {url}"));
                        self.line(format!("no_answer {what} {exec}curl -sS -o /dev/null --max-time 1 {url_q}"));
                    }
                    None => self.line(format!("{exec}curl -sS --max-time {ANSWER_SECONDS} {url_q} || true")),
                }
            }
            Probe::Tcp { node, addr, expect } => {
                // bash's own /dev/tcp: a handshake without needing nc on the machine.
                let exec = self.r.program_exec(node);
                let target = format!("/dev/tcp/{}/{}", addr.ip(), addr.port());
                let command = format!("{exec}timeout 1 bash -c {}", q(&format!("exec 3<>{target}")));
                self.check(
                    *expect,
                    &format!("{node} connects to {addr}"),
                    &format!("{node} cannot connect to {addr}"),
                    |_| command.clone(),
                );
            }
            Probe::Path { node, dst, hops, expect } => {
                let exec = self.r.program_exec(node);
                if expect.is_some() {
                    let shown: Vec<String> = hops.iter().map(|h| h.to_string()).collect();
                    let what = format!("{node} reaches {dst} through {}", shown.join(" → "));
                    let line = format!("path_answers {} {} {dst} {exec}", q(&what), q(&shown.join(" ")));
                    self.line(line.trim_end());
                } else {
                    // The path a lab only reads: printed, as traceroute would.
                    self.line(format!("path_is '' {dst} {exec}|| true"));
                }
            }
            Probe::Udp { node, addr, expect } => {
                // The stand-in's own client: a datagram, and its echo within a second.
                self.udp_probes = true;
                let exec = self.r.program_exec(node);
                let target = q(&addr.to_string());
                let command = format!("{exec}python3 \"$STANDIN/standin.py\" udp-send {target}");
                self.check(
                    *expect,
                    &format!("{node} gets an echo from {addr}/udp"),
                    &format!("{node} gets no echo from {addr}/udp"),
                    |_| command.clone(),
                );
            }
            Probe::Rtt { node, dst, count, min, max } => {
                let exec = self.r.program_exec(node);
                let ms = |ns: &Option<u64>| ns.map(|n| format!("{}", n as f64 / 1e6)).unwrap_or_default();
                let what = format!(
                    "round trip from {node} to {dst}: {}",
                    crate::render::ip::bounds_text(
                        min.map(crate::model::impair::duration_text),
                        max.map(crate::model::impair::duration_text)
                    )
                );
                // Each reply waits up to twice the upper bound (at least 2 s).
                let wait = max.map(|m| (m as f64 / 1e9 * 2.0).max(2.0)).unwrap_or(2.0);
                self.line(format!(
                    "rtt_between {} {} {} {exec}ping -c {count} -i 0.1 -W {wait} {dst}",
                    q(&what),
                    q(&ms(min)),
                    q(&ms(max))
                ));
            }
            Probe::Throughput { node, server, dst, seconds, check, min, max } => {
                self.servers += 1;
                let sink =
                    if dst.is_ipv6() { format!("[::]:{}", dst.port()) } else { format!("0.0.0.0:{}", dst.port()) };
                let exec = self.r.program_exec(server);
                self.line(format!("# netlab's TCP sink in {server}: the stand-in (standin.py) on {sink}"));
                self.line(format!("{exec}python3 \"$STANDIN/standin.py\" sink {} {seconds} &", q(&sink)));
                self.line("sink=$!");
                let ss = self.r.netns_exec(server);
                self.line(format!("wait_listening \"$sink\" t {} {}", dst.port(), ss.trim_end()).trim_end());
                let send = format!(
                    "{}python3 \"$STANDIN/standin.py\" send {}",
                    self.r.program_exec(node),
                    q(&dst.to_string())
                );
                if *check {
                    let rate = |r: &u64| crate::model::impair::rate_text(*r);
                    let what = format!(
                        "TCP from {node} to {dst}: {}",
                        crate::render::ip::bounds_text(min.as_ref().map(rate), max.as_ref().map(rate))
                    );
                    let bound = |b: &Option<u64>| b.map(|v| v.to_string()).unwrap_or_default();
                    self.line(format!("rate_between {} {} {} {send}", q(&what), q(&bound(min)), q(&bound(max))));
                } else {
                    self.line(format!("{send} || true"));
                }
                self.line("kill \"$sink\" 2>/dev/null; wait \"$sink\" 2>/dev/null || true");
            }
            Probe::Resolve { node, name, expect } => {
                let exec = self.r.program_exec(node);
                let command = format!("{exec}getent hosts {}", q(name));
                self.check(
                    *expect,
                    &format!("{node} resolves {name}"),
                    &format!("{node} cannot resolve {name}"),
                    |_| command.clone(),
                );
            }
        }
    }

    /// One check: `answers`/`no_answer` around the command, or the bare command when
    /// the lab only used the result.
    fn check(&mut self, expect: Option<Expect>, yes: &str, no: &str, command: impl Fn(Option<Expect>) -> String) {
        let line = match expect {
            Some(Expect::Answer) => format!("answers {} {}", q(yes), command(expect)),
            Some(Expect::NoAnswer) => format!("no_answer {} {}", q(no), command(expect)),
            None => format!("{} || true", command(None)),
        };
        self.line(line);
    }

    fn finish(self, lab_name: &str) -> String {
        let mut s = String::new();
        let name = one_line(lab_name);
        let _ = writeln!(s, "#!/usr/bin/env bash");
        let _ = writeln!(s, "# {name}, exported by netlab: the same network built with ip, sysctl and iptables, and");
        s += "# the same checks. Run it as root where namespaces, links and firewall rules may be\n";
        s += "# made (they are real); it takes back what it made when it ends, unless NETLAB_KEEP=1.\n";
        s += "#\n# Where it differs from `netlab run`:\n";
        s += "# - netlab's built-in HTTP, DNS and UDP echo servers and its router advertisements are\n";
        s += "#   a python3 stand-in (standin.py below), which also sends the UDP probes;\n";
        s += "# - checks on values the lab computed (expect, expect_eq) stay netlab's: they appear\n";
        s += "#   as \"# netlab checks: ...\" comments;\n";
        s += "# - the host is this machine's namespace: netlab's own host starts with\n";
        s += "#   net.ipv4.ip_forward=0 and IPv6 off on new links, this one as it is.\n";
        // Single quotes keep the lab's own texts ($, backquotes) literal on purpose.
        s += "# shellcheck disable=SC2016\n";
        s += "set -euo pipefail\n\n";
        s += "[ \"$(id -u)\" = 0 ] || { echo \"run it as root\" >&2; exit 1; }\n";
        let standin = self.servers > 0 || self.udp_probes;
        if standin {
            s += "command -v python3 >/dev/null || { echo \"the server stand-in needs python3\" >&2; exit 1; }\n";
        }
        let _ = writeln!(s, "LAB={}\n", q(&name));
        s += PRELUDE;
        if standin {
            let end = delimiter("STANDIN_PY", STANDIN_PY);
            let _ = write!(s, "\ncat > \"$STANDIN/standin.py\" <<'{end}'\n{STANDIN_PY}{end}\n");
        }
        s += &self.body;
        s += "\necho\nif ((failed > 0)); then\n  echo \"FAIL $LAB: $failed of $checks checks failed\"\n  exit 1\nfi\n";
        s += "echo \"PASS $LAB: $checks checks passed\"\n";
        s
    }
}

/// The ping of a check: one request retried by `answers`, or a short burst that must
/// go unanswered.
/// `ping` (with its options: `exec` ends with them) for a check.
fn ping_command(exec: &str, dst: &dyn std::fmt::Display, expect: Option<Expect>) -> String {
    match expect {
        Some(Expect::NoAnswer) => format!("{exec} -c3 -i0.01 -W0.1 {dst}"),
        _ => format!("{exec} -c1 -W1 {dst}"),
    }
}

fn one_line(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join(" ")
}

/// A heredoc delimiter that is no line of `text`.
fn delimiter(base: &str, text: &str) -> String {
    let mut end = base.to_string();
    let mut n = 0;
    while text.lines().any(|l| l == end) {
        n += 1;
        end = format!("{base}{n}");
    }
    end
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write as _};
    use std::net::{IpAddr, TcpStream, UdpSocket};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::model::firewall::{FilterChain, FirewallChange, ForwardAccept, Masquerade, Policy};
    use crate::model::{EtcFile, NextHop};
    use crate::names::LinkName;

    fn n(name: &str) -> NodeName {
        NodeName::new(name).unwrap()
    }

    fn l(name: &str) -> LinkName {
        LinkName::new(name).unwrap()
    }

    fn op(op: Op) -> Entry {
        Entry::Op { op, line: 1 }
    }

    fn probe(probe: Probe) -> Entry {
        Entry::Probe { probe, line: 1 }
    }

    /// Seed 003's bridge: br0 on the host, container4 and container5 behind it, NAT
    /// to an "internet" node with an HTTP and a DNS server.
    fn bridge_journal() -> Vec<Entry> {
        let mut j = vec![Entry::Step { title: "Bridge two containers".into() }];
        j.push(op(Op::AddBridge { node: n("host"), name: l("br0") }));
        j.push(op(Op::SetUp { node: n("host"), link: l("br0"), up: true }));
        j.push(op(Op::AddAddr { node: n("host"), link: l("br0"), cidr: "10.201.0.1/24".parse().unwrap() }));
        for i in ["4", "5"] {
            let c = n(&format!("container{i}"));
            j.push(op(Op::AddNode { node: c.clone() }));
            j.push(op(Op::AddVeth {
                node: n("host"),
                name: l(&format!("brid{i}")),
                peer_node: c.clone(),
                peer: l(&format!("veth{i}")),
            }));
            j.push(op(Op::SetMaster { node: n("host"), link: l(&format!("brid{i}")), master: Some(l("br0")) }));
            j.push(op(Op::SetUp { node: n("host"), link: l(&format!("brid{i}")), up: true }));
            let cidr = format!("10.201.0.{i}/24").parse().unwrap();
            j.push(op(Op::AddAddr { node: c.clone(), link: l(&format!("veth{i}")), cidr }));
            j.push(op(Op::SetUp { node: c.clone(), link: l(&format!("veth{i}")), up: true }));
            let hop = NextHop::Gateway("10.201.0.1".parse().unwrap());
            j.push(op(Op::AddRoute { node: c, dest: None, hop, opts: Default::default() }));
        }
        j.push(op(Op::Firewall {
            node: n("host"),
            change: FirewallChange::ChainPolicy(FilterChain::Forward, Policy::Drop),
        }));
        let c5 = n("container5");
        j.push(probe(Probe::Ping {
            node: n("container4"),
            dst: "10.201.0.5".parse().unwrap(),
            expect: Some(Expect::NoAnswer),
            opts: Default::default(),
        }));
        let accept = ForwardAccept { in_link: Some(l("br0")), out_link: Some(l("br0")), ..Default::default() };
        j.push(op(Op::Firewall { node: n("host"), change: FirewallChange::ForwardAccept(accept) }));
        j.push(probe(Probe::PingAll {
            nodes: vec![n("container4"), c5.clone(), n("host")],
            dst: "10.201.0.1".parse().unwrap(),
            expect: Some(Expect::Answer),
        }));

        j.push(Entry::Step { title: "Out to the internet".into() });
        j.push(op(Op::AddNode { node: n("internet") }));
        j.push(op(Op::AddVeth { node: n("internet"), name: l("eth0"), peer_node: n("host"), peer: l("uplink") }));
        j.push(op(Op::AddAddr { node: n("internet"), link: l("eth0"), cidr: "198.51.100.53/24".parse().unwrap() }));
        j.push(op(Op::SetUp { node: n("internet"), link: l("eth0"), up: true }));
        j.push(op(Op::AddAddr { node: n("host"), link: l("uplink"), cidr: "198.51.100.1/24".parse().unwrap() }));
        j.push(op(Op::SetUp { node: n("host"), link: l("uplink"), up: true }));
        j.push(op(Op::SetSysctl { node: n("host"), key: "net.ipv4.ip_forward".into(), value: "1".into() }));
        let masq = Masquerade { source: "10.201.0.0/24".parse().unwrap(), out: None, not_out: None };
        j.push(op(Op::Firewall { node: n("host"), change: FirewallChange::Masquerade(masq) }));
        let web =
            ServerSpec::Http { addr: "0.0.0.0:80".parse().unwrap(), body: "hello, it's the web\n".into(), status: 200 };
        j.push(op(Op::StartServer { node: n("internet"), server: web }));
        let records = vec![("google.com".to_string(), "198.51.100.53".parse().unwrap())];
        let dns = ServerSpec::Dns { addr: "198.51.100.53:53".parse().unwrap(), records };
        j.push(op(Op::StartServer { node: n("internet"), server: dns }));
        j.push(probe(Probe::Ping {
            node: n("container4"),
            dst: "198.51.100.53".parse().unwrap(),
            expect: Some(Expect::Answer),
            opts: Default::default(),
        }));
        j.push(op(Op::WriteFile {
            node: c5.clone(),
            file: EtcFile::ResolvConf,
            text: "nameserver 198.51.100.53\n".into(),
        }));
        j.push(op(Op::WriteFile {
            node: n("container4"),
            file: EtcFile::Hosts,
            text: "127.0.0.1 localhost\n198.51.100.53 web\n".into(),
        }));
        j.push(op(Op::SetHostname { node: c5.clone(), name: "web5".into() }));
        j.push(probe(Probe::Resolve { node: c5.clone(), name: "google.com".into(), expect: Some(Expect::Answer) }));
        j.push(probe(Probe::Http {
            node: c5.clone(),
            url: "http://google.com/".into(),
            expect: Some(Expect::Answer),
            status: 200,
            body: Some("it's the web".into()),
        }));
        j.push(probe(Probe::Http {
            node: n("container4"),
            url: "http://10.9.9.9/".into(),
            expect: Some(Expect::NoAnswer),
            status: 200,
            body: None,
        }));
        j.push(op(Op::Exec { node: c5.clone(), command: "hostname".into() }));
        j.push(Entry::Claim { title: "container5's hostname is web5".into(), line: 40 });
        j.push(op(Op::DelNode { node: c5.clone() }));
        j.push(op(Op::AddNode { node: c5 }));
        j
    }

    /// Every op and probe variant, with names and texts the shell must be careful with.
    fn every_kind_journal() -> Vec<Entry> {
        let (a, b, h) = (n("a"), n("b"), n("host"));
        let cidr = |s: &str| s.parse().unwrap();
        let mut j = vec![Entry::Step { title: "Every kind of op\nand probe".into() }];
        for node in [&a, &b] {
            j.push(op(Op::AddNode { node: node.clone() }));
        }
        j.extend(
            [
                Op::AddVeth { node: a.clone(), name: l("x$y"), peer_node: b.clone(), peer: l("p'q") },
                Op::AddVeth { node: a.clone(), name: l("up0"), peer_node: h.clone(), peer: l("va") },
                Op::AddVeth { node: h.clone(), name: l("h0"), peer_node: h.clone(), peer: l("h1") },
                Op::MoveLink { node: h.clone(), link: l("h1"), to: b.clone(), new_name: l("eth1") },
                Op::MoveLink { node: b.clone(), link: l("eth1"), to: h.clone(), new_name: l("back") },
                Op::AddBridge { node: b.clone(), name: l("br-b") },
                Op::SetMaster { node: b.clone(), link: l("p'q"), master: Some(l("br-b")) },
                Op::SetMaster { node: b.clone(), link: l("p'q"), master: None },
                Op::SetUp { node: a.clone(), link: l("x$y"), up: true },
                Op::AddAddr { node: a.clone(), link: l("x$y"), cidr: cidr("fd00::1/64") },
                Op::AddAddr { node: h.clone(), link: l("va"), cidr: cidr("10.9.0.1/24") },
                Op::DelAddr { node: h.clone(), link: l("va"), cidr: cidr("10.9.0.1/24") },
                Op::AddRoute {
                    node: a.clone(),
                    dest: None,
                    hop: NextHop::Gateway("fd00::2".parse().unwrap()),
                    opts: Default::default(),
                },
                Op::AddRoute {
                    node: a.clone(),
                    dest: Some(cidr("10.0.0.0/8")),
                    hop: NextHop::Device(l("up0")),
                    opts: Default::default(),
                },
                Op::DelRoute { node: a.clone(), dest: Some(cidr("10.0.0.0/8")), table: None },
                Op::SetSysctl { node: h.clone(), key: "net/ipv4/conf/all/forwarding".into(), value: "1".into() },
                Op::SetSysctl { node: b.clone(), key: "net.ipv4.ip_forward".into(), value: "1".into() },
                Op::Firewall {
                    node: b.clone(),
                    change: FirewallChange::PortForward(crate::model::firewall::PortForward {
                        proto: crate::model::firewall::Proto::Udp,
                        port: 53,
                        to: "[fd00::1]:53".parse().unwrap(),
                        in_link: Some(l("x$y")),
                        local: true,
                    }),
                },
                Op::Firewall {
                    node: b.clone(),
                    change: FirewallChange::ChainPolicy(FilterChain::Forward, Policy::Accept),
                },
                Op::WriteFile { node: h.clone(), file: EtcFile::Hosts, text: "1.2.3.4 it's $HOME `x`\n".into() },
                Op::WriteFile { node: a.clone(), file: EtcFile::ResolvConf, text: "nameserver fd00::2\nEOF\n".into() },
                Op::SetHostname { node: h.clone(), name: "lab-host".into() },
                Op::SetHostname { node: a.clone(), name: "a1".into() },
                Op::SetHostname { node: a.clone(), name: "a2".into() },
                Op::StartServer {
                    node: b.clone(),
                    server: ServerSpec::Dns {
                        addr: "[::]:53".parse().unwrap(),
                        records: vec![("a.lab".into(), "fd00::1".parse().unwrap())],
                    },
                },
                Op::StartServer {
                    node: a.clone(),
                    server: ServerSpec::Http {
                        addr: "[fd00::1]:8080".parse().unwrap(),
                        body: String::new(),
                        status: 503,
                    },
                },
                Op::Exec { node: a.clone(), command: "ip -br addr | grep -c \"$1\"".into() },
                Op::Exec { node: h.clone(), command: "ip link show".into() },
                Op::DelLink { node: h.clone(), link: l("h0") },
            ]
            .into_iter()
            .map(op),
        );
        let dst: IpAddr = "fd00::1".parse().unwrap();
        for expect in [None, Some(Expect::Answer), Some(Expect::NoAnswer)] {
            j.push(probe(Probe::Ping { node: a.clone(), dst, expect, opts: Default::default() }));
            j.push(probe(Probe::PingAll { nodes: vec![a.clone(), b.clone(), h.clone(), n("c")], dst, expect }));
            j.push(probe(Probe::Http {
                node: b.clone(),
                url: "http://[fd00::1]:8080/?a=1&b='2'".into(),
                expect,
                status: 503,
                body: Some("$(reboot)".into()),
            }));
            j.push(probe(Probe::Resolve { node: h.clone(), name: "a.lab".into(), expect }));
        }
        j.push(Entry::Claim { title: "a's \"hostname\"\nis a2".into(), line: 3 });
        j.push(op(Op::DelNode { node: a }));
        j
    }

    /// A scratch folder of this test process.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("netlab-render-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn have(program: &str) -> bool {
        crate::backend::kernel::exec::find_program(program).is_some()
    }

    #[test]
    fn the_export_is_a_valid_bash_script() {
        for (name, journal) in [("bridge_nat", bridge_journal()), ("every kind's lab", every_kind_journal())] {
            valid_bash(&export(name, &journal, "host"));
        }
    }

    fn valid_bash(script: &str) {
        let path = scratch("syntax").join("export.sh");
        std::fs::write(&path, script).unwrap();
        // Only checked, never run: it would make namespaces and rules on this machine.
        let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(out.status.success(), "bash -n: {}\n{script}", String::from_utf8_lossy(&out.stderr));
        if have("shellcheck") {
            // Warnings and errors; infos and style notes vary between shellcheck versions.
            let out = Command::new("shellcheck").args(["-S", "warning"]).arg(&path).output().unwrap();
            assert!(out.status.success(), "shellcheck: {}", String::from_utf8_lossy(&out.stdout));
        } else {
            eprintln!("shellcheck is not installed: only bash -n checked the export");
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn the_export_builds_with_the_tutorials_commands_and_checks_like_netlab() {
        let script = export("bridge_nat", &bridge_journal(), "host");
        let has = |text: &str| assert!(script.contains(text), "missing {text:?} in\n{script}");
        assert!(script.starts_with("#!/usr/bin/env bash\n"));
        has("set -euo pipefail\n");
        has("\nSTANDIN=$(mktemp -d /run/netlab-export.XXXXXX)\n");
        has("\ntrap cleanup EXIT\n");
        has("\necho '── 1. Bridge two containers'\n");
        has("\nip link add brid4 type veth peer name veth4 netns container4\nundo ip link del brid4\n");
        has("\nip -n container4 addr add 10.201.0.4/24 dev veth4\n");
        has("\niptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE\n");
        has("\nsysctl -w net.ipv4.ip_forward=1\n");
        // Checks: netlab's titles, retried positives, short negatives.
        has("\nno_answer 'container4 cannot ping 10.201.0.5' ip netns exec container4 ping -c3 -i0.01 -W0.1 10.201.0.5\n");
        has("\nanswers 'container4 pings 198.51.100.53' ip netns exec container4 ping -c1 -W1 198.51.100.53\n");
        has("\nfor n in container4 container5; do\n  answers \"$n pings 10.201.0.1\" ip netns exec \"$n\" ping -c1 -W1 10.201.0.1\ndone\n");
        has("\nno_answer 'container4 cannot curl http://10.9.9.9/' ip netns exec container4 curl -sS -o /dev/null --max-time 1 http://10.9.9.9/\n");
        has("\n# netlab checks: container5's hostname is web5\n");
        // The bridge table only where bridged frames do not meet iptables, rewritten whole.
        has("\nif ! bridged_traffic_meets_iptables; then\n  nft -f - <<'NFT'\ntable bridge netlab_bridge\n");
        has("    meta ibrname \"br0\" meta obrname \"br0\" accept\n    meta protocol { ip, ip6 } drop\n");
        // Servers: the stand-in, waited for by its socket.
        has("cat > \"$STANDIN/standin.py\" <<'STANDIN_PY'\n#!/usr/bin/env python3\n");
        has("\nip netns exec internet python3 \"$STANDIN/standin.py\" http 0.0.0.0:80 200 \"$STANDIN/body-1\" &\nSERVERS+=(\"$!\")\nwait_listening \"$!\" t 80 ip netns exec internet\n");
        has("python3 \"$STANDIN/standin.py\" dns 198.51.100.53:53 google.com=198.51.100.53 &\n");
        // Files: a heredoc for several lines; the earlier file comes back at the end.
        has("\nsave_file /etc/netns/container4/hosts\nmkdir -p /etc/netns/container4\ncat > /etc/netns/container4/hosts <<'EOF'\n127.0.0.1 localhost\n198.51.100.53 web\nEOF\n");
        // The hostname's UTS namespace, then programs in it; gone with the node.
        has("unshare --uts=/run/netlab/uts/container5 hostname web5\n");
        has("\nhttp_answers 'container5 curl http://google.com/' 200 'it'\\''s the web' nsenter --uts=/run/netlab/uts/container5 ip netns exec container5 curl -sS -o \"$STANDIN/body\" --max-time 3 -w '%{http_code}' http://google.com/\n");
        has(
            "\nnsenter --uts=/run/netlab/uts/container5 ip netns exec container5 hostname </dev/null || echo \"exit status $?\"\n",
        );
        has("\nip netns delete container5\numount /run/netlab/uts/container5 && rm /run/netlab/uts/container5\nip netns add container5\n");
        assert!(script.ends_with("echo \"PASS $LAB: $checks checks passed\"\n"));
    }

    #[test]
    fn programs_run_with_mounts_of_their_own_like_netlabs() {
        let journal = vec![
            op(Op::AddNode { node: n("c4") }),
            op(Op::Exec { node: n("host"), command: "mount -t tmpfs none /run/netns && ip addr show".into() }),
            op(Op::Exec { node: n("c4"), command: "cat /etc/resolv.conf".into() }),
        ];
        let script = export("exec", &journal, "host");
        // The host's program in a mount namespace of its own, as netlab's exec_in runs it;
        // a node's gets one from `ip netns exec`.
        assert!(script.contains(
            "\nunshare --mount --propagation slave sh -c 'mount -t tmpfs none /run/netns && ip addr show' </dev/null || echo \"exit status $?\"\n"
        ), "{script}");
        assert!(
            script.contains("\nip netns exec c4 cat /etc/resolv.conf </dev/null || echo \"exit status $?\"\n"),
            "{script}"
        );
    }

    #[test]
    fn a_node_made_again_starts_afresh() {
        let router = n("router");
        let policy =
            |p| op(Op::Firewall { node: router.clone(), change: FirewallChange::ChainPolicy(FilterChain::Forward, p) });
        let accept = op(Op::Firewall {
            node: router.clone(),
            change: FirewallChange::ForwardAccept(ForwardAccept { in_link: Some(l("br0")), ..Default::default() }),
        });
        let hostname = op(Op::SetHostname { node: router.clone(), name: "r1".into() });
        let journal = vec![
            op(Op::AddNode { node: router.clone() }),
            policy(Policy::Drop),
            hostname.clone(),
            op(Op::DelNode { node: router.clone() }),
            op(Op::AddNode { node: router.clone() }),
            accept,
            hostname,
        ];
        let script = export("again", &journal, "host");
        // The first router's DROP does not carry over into the second's bridge table.
        let tables: Vec<&str> = script.split("nft -f - <<'NFT'\n").skip(1).collect();
        assert_eq!(tables.len(), 2, "{script}");
        assert!(tables[0].contains("meta protocol { ip, ip6 } drop"));
        assert!(!tables[1].split("NFT\n").next().unwrap().contains('{'), "no policy yet: {}", tables[1]);
        assert!(script.contains(
            "if ! bridged_traffic_meets_iptables ip netns exec router; then\n  ip netns exec router nft -f - <<'NFT'\n"
        ));
        // A fresh UTS namespace for the new router.
        assert_eq!(script.matches("unshare --uts=/run/netlab/uts/router hostname r1").count(), 2, "{script}");
        assert!(!script.contains("nsenter"), "{script}");
        // Nothing served: no stand-in.
        assert!(!script.contains("cat > \"$STANDIN/standin.py\""));
    }

    /// The script's helpers, run without root and without namespaces: the stand-in
    /// waited for by its socket, checks counted, servers and files gone at the end.
    #[test]
    fn the_scripts_helpers_wait_check_and_clean_up() {
        if !["python3", "curl", "ss", "timeout"].iter().all(|p| have(p)) {
            eprintln!("python3, curl, ss or timeout missing: the helpers are not run");
            return;
        }
        let (Some(http), Some(dns)) = (free_port("127.0.0.1"), free_port("127.0.0.1")) else { return };
        let dir = scratch("helpers");
        let prelude = PRELUDE.replace("/run/netlab-export", &format!("{}/netlab-export", dir.display()));
        let script = format!(
            r#"set -euo pipefail
{prelude}
cat > "$STANDIN/standin.py" <<'STANDIN_PY'
{STANDIN_PY}STANDIN_PY
printf '%s' 'hello web' > "$STANDIN/body-1"
python3 "$STANDIN/standin.py" http 127.0.0.1:{http} 200 "$STANDIN/body-1" &
SERVERS+=("$!")
wait_listening "$!" t {http}
python3 "$STANDIN/standin.py" dns 127.0.0.1:{dns} web.lab=203.0.113.80 &
SERVERS+=("$!")
wait_listening "$!" u {dns}
echo "servers ${{SERVERS[*]}}"
answers 'true answers' true
no_answer 'false gets none' false
no_answer 'true gets none' true
http_answers 'web curl' 200 'lo we' curl -sS -o "$STANDIN/body" --max-time 3 -w '%{{http_code}}' http://127.0.0.1:{http}/
no_answer 'nothing on port 1' curl -sS -o /dev/null --max-time 1 http://127.0.0.1:1/
echo "checks=$checks failed=$failed"
"#
        );
        let out = Command::new("bash").arg("-c").arg(&script).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let why = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{why}");
        for line in [
            "   ok   true answers\n",
            "   ok   false gets none\n",
            "   FAIL true gets none: got an answer\n",
            "   ok   web curl: 200\n",
            "   ok   nothing on port 1\n",
            "checks=5 failed=1\n",
        ] {
            assert!(stdout.contains(line), "missing {line:?}: {why}");
        }
        // The trap killed both servers and removed the scratch folder.
        let pids = stdout.lines().find_map(|l| l.strip_prefix("servers ")).unwrap();
        for pid in pids.split_whitespace() {
            let started = Instant::now();
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "));
                assert!(zombie || started.elapsed() < Duration::from_secs(2), "server {pid} still runs");
                if zombie {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The stand-in, started by python3 on 127.0.0.1 or ::1; killed when dropped.
    struct StandIn {
        child: Child,
        dir: std::path::PathBuf,
    }

    impl StandIn {
        fn start(name: &str, args: &[String]) -> Option<StandIn> {
            if !have("python3") {
                eprintln!("python3 is not installed: the stand-in is not tested");
                return None;
            }
            let dir = scratch(name);
            std::fs::write(dir.join("standin.py"), STANDIN_PY).unwrap();
            let child = Command::new("python3")
                .arg(dir.join("standin.py"))
                .args(args)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            Some(StandIn { child, dir })
        }

        fn alive(&mut self) -> bool {
            self.child.try_wait().unwrap().is_none()
        }
    }

    impl Drop for StandIn {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn free_port(ip: &str) -> Option<u16> {
        Some(std::net::TcpListener::bind((ip, 0)).ok()?.local_addr().ok()?.port())
    }

    fn http_get(server: &mut StandIn, addr: &str) -> String {
        let started = Instant::now();
        let mut stream = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(server.alive() && started.elapsed() < Duration::from_secs(5), "no HTTP stand-in: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"GET /any/path HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn the_http_stand_in_answers_every_request_with_its_status_and_body() {
        for ip in ["127.0.0.1", "::1"] {
            let Some(port) = free_port(ip) else { continue }; // no IPv6 here
            let addr = if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
            let dir = scratch("http-body");
            let body = dir.join("body");
            std::fs::write(&body, "not here, it's elsewhere\n").unwrap();
            let args = ["http".to_string(), addr.clone(), "404".into(), body.display().to_string()];
            let Some(mut server) = StandIn::start("http", &args) else { return };
            let reply = http_get(&mut server, &addr);
            assert!(reply.starts_with("HTTP/1.1 404 Not Found\r\n"), "{reply}");
            assert!(reply.contains("\r\nContent-Length: 25\r\n"), "{reply}");
            assert!(reply.ends_with("\r\n\r\nnot here, it's elsewhere\n"), "{reply}");
            // Every request gets the same answer.
            assert_eq!(without_date(&http_get(&mut server, &addr)), without_date(&reply));
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// A reply without its Date header (which may differ between two answers).
    fn without_date(reply: &str) -> String {
        reply.split("\r\n").filter(|l| !l.starts_with("Date:")).collect::<Vec<_>>().join("\r\n")
    }

    /// A DNS query for NAME of type QTYPE (1 = A, 28 = AAAA), id 0x1234, recursion desired.
    fn dns_query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend(label.as_bytes());
        }
        q.push(0);
        q.extend(qtype.to_be_bytes());
        q.extend(1u16.to_be_bytes());
        q
    }

    /// Asks the stand-in; retried while it starts. Returns (rcode, answers' addresses).
    fn ask(server: &mut StandIn, sock: &UdpSocket, addr: &str, name: &str, qtype: u16) -> (u8, Vec<IpAddr>) {
        let query = dns_query(name, qtype);
        let started = Instant::now();
        let mut buf = [0u8; 512];
        let len = loop {
            sock.send_to(&query, addr).unwrap();
            match sock.recv(&mut buf) {
                Ok(len) => break len,
                Err(e) => assert!(server.alive() && started.elapsed() < Duration::from_secs(5), "no DNS stand-in: {e}"),
            }
        };
        let reply = &buf[..len];
        assert_eq!(reply[..2], [0x12, 0x34], "the query's id");
        assert_eq!(reply[2] & 0x80, 0x80, "a response");
        assert_eq!(reply[2] & 0x01, 0x01, "recursion desired, as asked");
        assert_eq!(u16::from_be_bytes([reply[4], reply[5]]), 1, "the question comes back");
        assert_eq!(&reply[12..query.len()], &query[12..], "the question comes back");
        let count = u16::from_be_bytes([reply[6], reply[7]]);
        let mut at = query.len();
        let mut ips = Vec::new();
        for _ in 0..count {
            // A pointer to the question's name, then type, class, TTL, length, data.
            assert_eq!(reply[at..at + 2], [0xc0, 0x0c]);
            let rtype = u16::from_be_bytes([reply[at + 2], reply[at + 3]]);
            let rlen = usize::from(u16::from_be_bytes([reply[at + 10], reply[at + 11]]));
            let data = &reply[at + 12..at + 12 + rlen];
            ips.push(match (rtype, rlen) {
                (1, 4) => IpAddr::from(<[u8; 4]>::try_from(data).unwrap()),
                (28, 16) => IpAddr::from(<[u8; 16]>::try_from(data).unwrap()),
                other => panic!("unexpected record {other:?}"),
            });
            at += 12 + rlen;
        }
        assert_eq!(at, len, "nothing after the answers");
        (reply[3] & 0x0f, ips)
    }

    #[test]
    fn the_dns_stand_in_answers_its_names_and_nxdomain_for_others() {
        let Some(port) = free_port("127.0.0.1") else { return };
        let addr = format!("127.0.0.1:{port}");
        let args = [
            "dns".to_string(),
            addr.clone(),
            "google.com=198.51.100.53".into(),
            "Google.com.=2001:db8::53".into(),
            "web.lab=203.0.113.80".into(),
        ];
        let Some(mut server) = StandIn::start("dns", &args) else { return };
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let v4: IpAddr = "198.51.100.53".parse().unwrap();
        let v6: IpAddr = "2001:db8::53".parse().unwrap();
        assert_eq!(ask(&mut server, &sock, &addr, "google.com", 1), (0, vec![v4]));
        assert_eq!(ask(&mut server, &sock, &addr, "GOOGLE.com", 28), (0, vec![v6]));
        // A known name without an address of that family: no error, no answer.
        assert_eq!(ask(&mut server, &sock, &addr, "web.lab", 28), (0, vec![]));
        assert_eq!(ask(&mut server, &sock, &addr, "example.com", 1), (3, vec![]), "NXDOMAIN");
    }
}
