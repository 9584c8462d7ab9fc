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

use super::ip::{iptables_commands, q, Renderer};
use crate::firewall::BridgeFilter;
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

# bridged_traffic_meets_iptables [ip netns exec NODE]: whether br_netfilter hands the
# node's bridged frames to iptables' FORWARD chain; if not, netlab's nft bridge table
# stands in for the FORWARD rules, as netlab does.
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
    /// Files whose earlier state the script already saved.
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
                self.line(format!("echo {}", shell_words::quote(&header)));
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
            }
            Op::AddBridge { node, name } => {
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
            Op::Firewall { node, change } => {
                let exec = self.r.netns_exec(node);
                for cmd in iptables_commands(&change.restore_input()) {
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
            Op::SetHostname { node, .. } if !host(node) && !self.r.has_uts(node) => {
                let path = Renderer::uts_path(node);
                self.undo(format!("rm -f {path}"));
                let lines = self.r.op(op);
                self.lines(lines);
                self.undo(format!("umount {path}"));
            }
            Op::StartServer { node, server } => self.server(node, server),
            Op::Exec { .. } => {
                // exec_in hands the exit status to the lab, which judges it (a claim).
                for l in self.r.op(op) {
                    self.line(format!("{l} || echo \"exit status $?\""));
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
                self.line(format!("printf '%s' {} > \"$STANDIN/body-{n}\"", shell_words::quote(body)));
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
        };
        self.line(format!("{exec}python3 \"$STANDIN/standin.py\" {what} &"));
        self.line("SERVERS+=(\"$!\")");
        let ss = self.r.netns_exec(node);
        self.line(format!("wait_listening \"$!\" {kind} {} {}", server.addr().port(), ss.trim_end()).trim_end());
    }

    fn probe(&mut self, probe: &Probe) {
        match probe {
            Probe::Ping { node, dst, expect } => {
                let exec = self.r.program_exec(node);
                self.check(*expect, &format!("{node} pings {dst}"), &format!("{node} cannot ping {dst}"), |e| {
                    ping_command(&exec, *dst, e)
                });
            }
            Probe::PingAll { nodes, dst, expect } => {
                // Nodes run as plain `ip netns exec` go in one loop; the host and nodes
                // with a UTS namespace of their own get a line each.
                let (plain, own): (Vec<&NodeName>, Vec<&NodeName>) =
                    nodes.iter().partition(|n| !self.r.is_host(n) && !self.r.has_uts(n));
                for node in own {
                    self.probe(&Probe::Ping { node: node.clone(), dst: *dst, expect: *expect });
                }
                if plain.len() < 2 {
                    for node in plain {
                        self.probe(&Probe::Ping { node: node.clone(), dst: *dst, expect: *expect });
                    }
                    return;
                }
                let names: Vec<String> = plain.iter().map(|n| q(n.as_str())).collect();
                let exec = "ip netns exec \"$n\" ";
                let body = match expect {
                    Some(Expect::Answer) => {
                        format!("answers \"$n pings {dst}\" {}", ping_command(exec, *dst, Some(Expect::Answer)))
                    }
                    Some(Expect::NoAnswer) => format!(
                        "no_answer \"$n cannot ping {dst}\" {}",
                        ping_command(exec, *dst, Some(Expect::NoAnswer))
                    ),
                    None => format!("{} || true", ping_command(exec, *dst, None)),
                };
                self.line(format!("for n in {}; do\n  {body}\ndone", names.join(" ")));
            }
            Probe::Http { node, url, expect, status, body } => {
                let exec = self.r.program_exec(node);
                let url_q = q(url);
                match expect {
                    Some(Expect::Answer) => {
                        let what = shell_words::quote(&format!("{node} curl {url}")).into_owned();
                        let text = shell_words::quote(body.as_deref().unwrap_or("")).into_owned();
                        self.line(format!(
                            "http_answers {what} {status} {text} {exec}curl -sS -o \"$STANDIN/body\" --max-time {ANSWER_SECONDS} -w '%{{http_code}}' {url_q}"
                        ));
                    }
                    Some(Expect::NoAnswer) => {
                        let what = shell_words::quote(&format!("{node} cannot curl {url}")).into_owned();
                        self.line(format!("no_answer {what} {exec}curl -sS -o /dev/null --max-time 1 {url_q}"));
                    }
                    None => self.line(format!("{exec}curl -sS --max-time {ANSWER_SECONDS} {url_q} || true")),
                }
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
            Some(Expect::Answer) => format!("answers {} {}", shell_words::quote(yes), command(expect)),
            Some(Expect::NoAnswer) => format!("no_answer {} {}", shell_words::quote(no), command(expect)),
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
        s += "# - netlab's built-in HTTP and DNS servers are a python3 stand-in (standin.py below);\n";
        s += "# - checks on values the lab computed (expect, expect_eq) stay netlab's: they appear\n";
        s += "#   as \"# netlab checks: ...\" comments;\n";
        s += "# - the host is this machine's namespace, left as it is: netlab's host starts with\n";
        s += "#   net.ipv4.ip_forward=0 and IPv6 off on new links; the host's sysctls and FORWARD\n";
        s += "#   policy set below are not taken back.\n";
        s += "set -euo pipefail\n\n";
        s += "[ \"$(id -u)\" = 0 ] || { echo \"run it as root\" >&2; exit 1; }\n";
        if self.servers > 0 {
            s += "command -v python3 >/dev/null || { echo \"the server stand-in needs python3\" >&2; exit 1; }\n";
        }
        let _ = writeln!(s, "LAB={}\n", shell_words::quote(&name));
        s += PRELUDE;
        if self.servers > 0 {
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
fn ping_command(exec: &str, dst: std::net::IpAddr, expect: Option<Expect>) -> String {
    match expect {
        Some(Expect::NoAnswer) => format!("{exec}ping -c3 -i0.01 -W0.1 {dst}"),
        _ => format!("{exec}ping -c1 -W1 {dst}"),
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
