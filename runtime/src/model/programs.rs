//! What the real programs a lab runs with exec_in change, as ops: the `ip`, `brctl`
//! and `sysctl -w` commands of a command line, so the model knows of the links,
//! addresses and routes a lab makes that way (`ip link add veth-red type veth peer
//! name vth-red-br`, docker::run_ip's `printf '%s\n' 'cmd1' 'cmd2' | ip -batch -`).
//!
//! Understood: shell lists (`&&`, `||`, `;`, `&`, newlines) and pipelines, `sh -c` /
//! `bash -c` bodies, `ip -n NS`, `ip netns exec NS CMD`, `ip -batch -` fed by `printf`
//! or `echo`, and
//! - `ip netns add|delete NS`
//! - `ip link add NAME [index I] [address MAC] [up] [netns NS] type veth|bridge
//!   [peer name PEER [index J] [address MAC] [up] [netns NS]]`
//! - `ip link set DEV up|down|master BR|nomaster|netns NS|name NEW`, `ip link del DEV`
//! - `ip addr add|del CIDR [brd +|-|ADDR] [label L] dev DEV`
//! - `ip route add|del DEST|default [via GW] [dev DEV] [onlink]`
//! - `brctl addbr BR`, `brctl addif|delif BR DEV...`
//! - `sysctl [-w] KEY=VALUE...`
//!
//! Anything else gives no op: reads (`ip addr show`), other programs (ping,
//! iptables, mount), options the model cannot follow (`mtu`, `metric`, `table`,
//! `scope`), and commands made of shell expansions (`$x`, backquotes, subshells),
//! whose words only the shell knows. The model ignores `index` and `address`: its
//! links take the kernel backend's ifindexes and MACs.

use std::net::IpAddr;

use ipnet::IpNet;

use super::op::Op;
use super::state::{NextHop, RouteOpts};
use crate::names::{LinkName, NodeName};

/// How deep `sh -c 'ip netns exec NS sh -c ...'` may nest.
const MAX_DEPTH: usize = 8;

/// How a command joins the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conn {
    /// `;`, `&`, a newline, a pipe: it runs whatever the previous did.
    Seq,
    /// `&&`: it runs if the previous succeeded.
    And,
    /// `||`: it runs if the previous failed.
    Or,
}

/// A command line's effect: ops, in lists run as the shell runs them. A list
/// succeeds as its last command run did; an empty one (a command that changes
/// nothing the model knows) succeeds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    Step(Step),
    List(Vec<(Conn, Item)>),
}

/// One op, with what the op itself cannot say.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub op: Op,
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Extra {
    None,
    /// `ip route add ... via GW dev DEV [onlink]` (op: AddRoute via GW): the gateway
    /// must be reached through DEV, or with onlink, is taken to be on DEV's link.
    Dev {
        dev: LinkName,
        onlink: bool,
    },
    /// `ip link set DEV name NEW` (op: MoveLink into its own node): a rename in
    /// place, which any link may have (a bridge cannot move, even to its own node).
    Rename,
}

/// The ops equivalent to the `ip`, `brctl` and `sysctl -w` commands in a command
/// line run in `node`, in order (each of `a || b` included, though only one runs).
pub fn ops_of(node: &NodeName, command: &str) -> Vec<Op> {
    fn flatten(item: Item, out: &mut Vec<Op>) {
        match item {
            Item::Step(step) => out.push(step.op),
            Item::List(items) => items.into_iter().for_each(|(_, i)| flatten(i, out)),
        }
    }
    let mut ops = Vec::new();
    flatten(parse(node, command), &mut ops);
    ops
}

/// The command line as the shell runs it (exec_in's command is a shell's when it
/// has shell syntax, and a plain argv is a one-command script all the same).
pub(crate) fn parse(node: &NodeName, command: &str) -> Item {
    script(node, command, 0)
}

fn empty() -> Item {
    Item::List(Vec::new())
}

fn step(op: Op) -> Item {
    Item::Step(Step { op, extra: Extra::None })
}

/// Items that run one after the other, each only if the previous succeeded (one
/// program's changes: a failure ends it).
fn chain(items: Vec<Item>) -> Item {
    match items.len() {
        1 => items.into_iter().next().expect("one item"),
        _ => Item::List(
            items.into_iter().enumerate().map(|(i, it)| (if i == 0 { Conn::Seq } else { Conn::And }, it)).collect(),
        ),
    }
}

fn script(node: &NodeName, text: &str, depth: usize) -> Item {
    if depth > MAX_DEPTH {
        return empty();
    }
    let list =
        split_list(text).into_iter().map(|(conn, pipeline)| (conn, pipeline_item(node, &pipeline, depth))).collect();
    Item::List(list)
}

/// One command of a pipeline as written; None when its words depend on the shell
/// (expansions, subshells, groups).
type Command = Option<String>;

/// A shell list split at its operators, quotes respected: the pipelines, each with
/// how it joins the previous one.
fn split_list(text: &str) -> Vec<(Conn, Vec<Command>)> {
    let mut out: Vec<(Conn, Vec<Command>)> = Vec::new();
    let mut pipeline: Vec<Command> = Vec::new();
    let mut cur = String::new();
    let mut dynamic = false;
    let mut conn = Conn::Seq;
    let (mut single, mut double) = (false, false);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    // Ends the current command; with `next`, the pipeline too.
    let mut end = |cur: &mut String, dynamic: &mut bool, pipeline: &mut Vec<Command>, next: Option<Conn>| {
        let text = std::mem::take(cur);
        if !text.trim().is_empty() || *dynamic {
            pipeline.push((!*dynamic).then_some(text));
        }
        *dynamic = false;
        if let Some(next) = next {
            if !pipeline.is_empty() {
                out.push((conn, std::mem::take(pipeline)));
            }
            conn = next;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        if single {
            single = c != '\'';
            cur.push(c);
        } else if c == '\\' {
            cur.push(c);
            if let Some(n) = next {
                cur.push(n);
                i += 1;
            }
        } else if double {
            double = c != '"';
            dynamic |= c == '$' || c == '`';
            cur.push(c);
        } else {
            match c {
                '\'' => {
                    single = true;
                    cur.push(c);
                }
                '"' => {
                    double = true;
                    cur.push(c);
                }
                '$' | '`' | '(' | ')' | '{' | '}' => {
                    dynamic = true;
                    cur.push(c);
                }
                '#' if prev.is_none_or(|p| p.is_whitespace() || ";&|".contains(p)) => {
                    while i + 1 < chars.len() && chars[i + 1] != '\n' {
                        i += 1;
                    }
                }
                '&' if next == Some('&') => {
                    end(&mut cur, &mut dynamic, &mut pipeline, Some(Conn::And));
                    i += 1;
                }
                // Redirections: 2>&1, >&2, &>file.
                '&' if matches!(prev, Some('>' | '<')) || next == Some('>') => cur.push(c),
                '|' if next == Some('|') => {
                    end(&mut cur, &mut dynamic, &mut pipeline, Some(Conn::Or));
                    i += 1;
                }
                '|' if prev == Some('>') => cur.push(c),
                '|' => end(&mut cur, &mut dynamic, &mut pipeline, None),
                ';' | '&' | '\n' => end(&mut cur, &mut dynamic, &mut pipeline, Some(Conn::Seq)),
                _ => cur.push(c),
            }
        }
        i += 1;
    }
    end(&mut cur, &mut dynamic, &mut pipeline, Some(Conn::Seq));
    out
}

/// A pipeline's commands, each fed what the one before prints when that is known
/// (printf, echo); it succeeds as its last command does.
fn pipeline_item(node: &NodeName, pipeline: &[Command], depth: usize) -> Item {
    let mut items = Vec::new();
    let mut stdin: Option<Vec<String>> = None;
    for command in pipeline {
        let argv = command.as_deref().and_then(words).unwrap_or_default();
        items.push((Conn::Seq, command_item(node, &argv, stdin.take(), depth)));
        stdin = output_lines(&argv);
    }
    match items.len() {
        1 => items.pop().expect("one item").1,
        _ => Item::List(items),
    }
}

/// The command's words as the shell passes them, without redirections and
/// leading variable assignments.
fn words(text: &str) -> Option<Vec<String>> {
    let split = shell_words::split(text).ok()?;
    let mut argv = Vec::new();
    let mut skip_next = false;
    for w in split {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        let op = w.trim_start_matches(|c: char| c.is_ascii_digit());
        if op.starts_with('>') || op.starts_with('<') || op.starts_with("&>") {
            skip_next = matches!(op, ">" | ">>" | "<" | "&>" | ">|" | "<<" | "<<<" | "&>>");
            continue;
        }
        let assignment = argv.is_empty()
            && w.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !assignment {
            argv.push(w);
        }
    }
    Some(argv)
}

/// What a command prints, for the next one in its pipeline: printf's and echo's.
fn output_lines(argv: &[String]) -> Option<Vec<String>> {
    let (program, args) = argv.split_first()?;
    let text = match program.as_str() {
        "printf" => printf(args.first()?, &args[1..]),
        "echo" => {
            let (escapes, args) = match args.first().map(String::as_str) {
                Some("-e") => (true, &args[1..]),
                Some("-n") | Some("-E") => (false, &args[1..]),
                _ => (false, args),
            };
            let line = args.join(" ");
            if escapes {
                unescape(&line)
            } else {
                line
            }
        }
        _ => return None,
    };
    Some(text.lines().map(str::to_string).collect())
}

/// printf FORMAT ARGS: %s (and %b, %d, ...) take the next argument; the format is
/// used again while arguments are left.
fn printf(format: &str, args: &[String]) -> String {
    let format = unescape(format);
    let mut out = String::new();
    let mut args = args.iter();
    loop {
        let mut consumed = false;
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some(_) => {
                    consumed = true;
                    if let Some(a) = args.next() {
                        out.push_str(a);
                    }
                }
                None => out.push('%'),
            }
        }
        if !consumed || args.len() == 0 {
            return out;
        }
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn command_item(node: &NodeName, argv: &[String], stdin: Option<Vec<String>>, depth: usize) -> Item {
    let Some((program, args)) = argv.split_first() else { return empty() };
    match program.rsplit('/').next().unwrap_or_default() {
        "sh" | "bash" | "dash" => shell(node, args, depth),
        "ip" => ip(node, args, stdin, depth),
        "brctl" => brctl(node, args),
        "sysctl" => sysctl(node, args),
        "sudo" | "exec" | "command" if args.first().is_some_and(|a| !a.starts_with('-')) => {
            command_item(node, args, stdin, depth)
        }
        _ => empty(),
    }
}

/// `sh -c BODY`: the body's script (options before it, e.g. `-ec`).
fn shell(node: &NodeName, args: &[String], depth: usize) -> Item {
    let mut c = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a.starts_with("--") {
            i += 1;
        } else if a.starts_with('-') || a.starts_with('+') {
            c |= a.starts_with('-') && a.contains('c');
            // -o OPTION takes the next word.
            i += if a.ends_with('o') { 2 } else { 1 };
        } else {
            break;
        }
    }
    match args.get(i) {
        Some(body) if c => script(node, body, depth + 1),
        _ => empty(),
    }
}

/// A word abbreviating a keyword as iproute2 accepts it (`ip a`, `ip ro`, `del`).
fn abbrev(word: &str, full: &str) -> bool {
    !word.is_empty() && full.starts_with(word)
}

fn node_name(word: &str) -> Option<NodeName> {
    NodeName::new(word).ok()
}

fn link_name(word: &str) -> Option<LinkName> {
    LinkName::new(word).ok()
}

fn ip(node: &NodeName, args: &[String], stdin: Option<Vec<String>>, depth: usize) -> Item {
    let mut node = node.clone();
    let (mut batch, mut force, mut v6) = (None, false, false);
    let mut i = 0;
    while let Some(opt) = args.get(i).and_then(|a| a.strip_prefix('-')) {
        let opt = opt.strip_prefix('-').unwrap_or(opt);
        let value = args.get(i + 1);
        match opt {
            "n" | "net" | "netns" => match value.and_then(|v| node_name(v)) {
                Some(n) => node = n,
                None => return empty(),
            },
            "b" | "batch" => match value {
                Some(v) => batch = Some(v.clone()),
                None => return empty(),
            },
            _ => {}
        }
        match opt {
            "n" | "net" | "netns" | "b" | "batch" => i += 2,
            "force" => {
                force = true;
                i += 1;
            }
            "6" | "family=inet6" => {
                v6 = true;
                i += 1;
            }
            "4" | "0" | "o" | "oneline" | "br" | "brief" | "d" | "details" | "s" | "stats" | "statistics" | "j"
            | "json" | "p" | "pretty" | "h" | "human" | "human-readable" | "iec" | "t" | "timestamp" | "ts"
            | "tshort" | "c" | "color" | "N" | "Numeric" => i += 1,
            _ if opt.starts_with("color=") || opt.starts_with("c=") => i += 1,
            _ => return empty(),
        }
    }
    let Some(batch) = batch else { return ip_command(&node, &args[i..], v6, depth) };
    if batch != "-" {
        return empty(); // a file only the kernel's run reads
    }
    // ip -batch stops at the first command that fails, unless -force.
    let conn = if force { Conn::Seq } else { Conn::And };
    let lines = stdin.unwrap_or_default();
    let commands = lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let items = commands
        .map(|l| shell_words::split(l).map(|w| ip_command(&node, &w, v6, depth)).unwrap_or_else(|_| empty()))
        .enumerate()
        .map(|(i, item)| (if i == 0 { Conn::Seq } else { conn }, item))
        .collect();
    Item::List(items)
}

/// One `ip OBJECT COMMAND ...` (without "ip" and the global options).
fn ip_command(node: &NodeName, args: &[String], v6: bool, depth: usize) -> Item {
    let Some((object, rest)) = args.split_first() else { return empty() };
    let object = object.as_str();
    let item = if abbrev(object, "address") {
        ip_addr(node, rest)
    } else if abbrev(object, "route") {
        ip_route(node, rest, v6)
    } else if abbrev(object, "link") {
        ip_link(node, rest)
    } else if object.len() >= 3 && abbrev(object, "netns") {
        return ip_netns(rest, depth);
    } else {
        None
    };
    item.unwrap_or_else(empty)
}

/// `ip netns add|delete NAME`, `ip netns exec NAME CMD...` (CMD runs in NAME,
/// whichever namespace ip itself runs in).
fn ip_netns(args: &[String], depth: usize) -> Item {
    let (Some(sub), Some(name)) = (args.first(), args.get(1).and_then(|n| node_name(n))) else { return empty() };
    if args.len() == 2 && abbrev(sub, "add") {
        step(Op::AddNode { node: name })
    } else if args.len() == 2 && abbrev(sub, "delete") {
        step(Op::DelNode { node: name })
    } else if abbrev(sub, "exec") {
        command_item(&name, &args[2..], None, depth + 1)
    } else {
        empty()
    }
}

/// Link options `ip link` takes that the model cannot follow.
const LINK_OPTIONS: &[&str] = &[
    "mtu",
    "txqueuelen",
    "txqlen",
    "qlen",
    "link",
    "group",
    "alias",
    "numtxqueues",
    "numrxqueues",
    "vf",
    "state",
    "arp",
    "multicast",
    "allmulticast",
    "promisc",
    "trailers",
    "dynamic",
    "carrier",
    "protodown",
    "addrgenmode",
    "xdp",
    "mode",
    "link-netns",
    "link-netnsid",
    "gso_max_size",
    "gso_max_segs",
    "broadcast",
    "brd",
    "peer",
    "master",
    "nomaster",
    "vrf",
];

fn ip_link(node: &NodeName, args: &[String]) -> Option<Item> {
    let (sub, rest) = args.split_first()?;
    if abbrev(sub, "add") {
        link_add(node, rest)
    } else if abbrev(sub, "set") {
        link_set(node, rest)
    } else if abbrev(sub, "delete") {
        let (dev, tail) = match rest {
            [kw, dev, tail @ ..] if kw == "dev" => (dev, tail),
            [dev, tail @ ..] => (dev, tail),
            [] => return None,
        };
        // `ip link del DEV type veth` names the kind it expects.
        if !(tail.is_empty() || (tail.len() == 2 && tail[0] == "type")) {
            return None;
        }
        Some(step(Op::DelLink { node: node.clone(), link: link_name(dev)? }))
    } else {
        None
    }
}

/// One end of `ip link add`: before `type`, or after `peer`.
#[derive(Default)]
struct End {
    name: Option<LinkName>,
    netns: Option<NodeName>,
    up: bool,
}

/// Parses an end's options up to `type` (or the end); returns the words after.
fn link_end(args: &[String], until_type: bool) -> Option<(End, &[String])> {
    let mut end = End::default();
    let mut i = 0;
    while let Some(w) = args.get(i) {
        let value = args.get(i + 1);
        match w.as_str() {
            "type" if until_type => return Some((end, &args[i..])),
            "up" => end.up = true,
            "down" => end.up = false,
            "name" | "dev" => {
                if end.name.is_some() {
                    return None;
                }
                end.name = Some(link_name(value?)?);
                i += 1;
            }
            // Ignored: the model's links take the kernel backend's ifindexes and MACs.
            "index" | "address" => i += 1,
            "netns" => {
                end.netns = Some(node_name(value?)?);
                i += 1;
            }
            w if LINK_OPTIONS.contains(&w) || w == "type" => return None,
            w => {
                if end.name.is_some() {
                    return None;
                }
                end.name = Some(link_name(w)?);
            }
        }
        i += 1;
    }
    (!until_type).then_some((end, &args[args.len()..]))
}

fn link_add(node: &NodeName, args: &[String]) -> Option<Item> {
    let (near, rest) = link_end(args, true)?;
    let name = near.name?;
    let here = near.netns.unwrap_or_else(|| node.clone());
    let (kind, rest) = rest.get(1).map(|k| (k.as_str(), &rest[2..]))?;
    let mut items = Vec::new();
    let mut up_peer = None;
    match kind {
        "bridge" if rest.is_empty() => items.push(step(Op::AddBridge { node: here.clone(), name: name.clone() })),
        "veth" => {
            let [kw, peer @ ..] = rest else { return None };
            if kw != "peer" {
                return None;
            }
            let (far, _) = link_end(peer, false)?;
            // The peer is made where ip runs unless it says otherwise.
            let (peer_node, peer) = (far.netns.unwrap_or_else(|| node.clone()), far.name?);
            items.push(step(Op::AddVeth {
                node: here.clone(),
                name: name.clone(),
                peer_node: peer_node.clone(),
                peer: peer.clone(),
            }));
            up_peer = far.up.then_some((peer_node, peer));
        }
        _ => return None,
    }
    if near.up {
        items.push(step(Op::SetUp { node: here, link: name, up: true }));
    }
    if let Some((node, link)) = up_peer {
        items.push(step(Op::SetUp { node, link, up: true }));
    }
    Some(chain(items))
}

fn link_set(node: &NodeName, args: &[String]) -> Option<Item> {
    let (mut dev, mut up, mut master, mut netns, mut name) = (None, None, None, None, None);
    let mut i = 0;
    while let Some(w) = args.get(i) {
        let value = args.get(i + 1);
        match w.as_str() {
            "up" => up = Some(true),
            "down" => up = Some(false),
            "nomaster" => master = Some(None),
            "master" | "netns" | "name" | "dev" => {
                let value = value?;
                match w.as_str() {
                    "master" => master = Some(Some(link_name(value)?)),
                    "netns" => netns = Some(node_name(value)?),
                    "name" => name = Some(link_name(value)?),
                    _ if dev.is_some() => return None,
                    _ => dev = Some(link_name(value)?),
                }
                i += 1;
            }
            w if LINK_OPTIONS.contains(&w) || w == "type" || w == "address" => return None,
            w => {
                if dev.is_some() {
                    return None;
                }
                dev = Some(link_name(w)?);
            }
        }
        i += 1;
    }
    let dev = dev?;
    // As the kernel takes one request: the move (and rename) first, then the rest.
    let (mut at, mut link) = (node.clone(), dev.clone());
    let mut items = Vec::new();
    let new_name = name.unwrap_or_else(|| dev.clone());
    if let Some(to) = netns {
        items.push(step(Op::MoveLink { node: node.clone(), link: dev, to: to.clone(), new_name: new_name.clone() }));
        (at, link) = (to, new_name);
    } else if new_name != dev {
        let op = Op::MoveLink { node: node.clone(), link: dev, to: node.clone(), new_name: new_name.clone() };
        items.push(Item::Step(Step { op, extra: Extra::Rename }));
        link = new_name;
    }
    if let Some(up) = up {
        items.push(step(Op::SetUp { node: at.clone(), link: link.clone(), up }));
    }
    if let Some(master) = master {
        items.push(step(Op::SetMaster { node: at, link, master }));
    }
    (!items.is_empty()).then(|| chain(items))
}

/// "10.0.0.1/24", or a bare address: a host prefix, as ip makes it.
fn cidr(word: &str) -> Option<IpNet> {
    word.parse::<IpNet>().ok().or_else(|| word.parse::<IpAddr>().ok().map(IpNet::from))
}

fn ip_addr(node: &NodeName, args: &[String]) -> Option<Item> {
    let (sub, rest) = args.split_first()?;
    let add = abbrev(sub, "add");
    if !add && !abbrev(sub, "delete") {
        return None;
    }
    let (mut local, mut dev) = (None, None);
    let mut i = 0;
    while let Some(w) = rest.get(i) {
        let value = rest.get(i + 1);
        match w.as_str() {
            "dev" => {
                dev = Some(link_name(value?)?);
                i += 1;
            }
            "local" => {
                local = Some(cidr(value?)?);
                i += 1;
            }
            // Ignored: the model derives the broadcast address; a label is only a name.
            "brd" | "broadcast" | "label" | "valid_lft" | "preferred_lft" => {
                value?;
                i += 1;
            }
            "nodad" => {}
            "peer" | "scope" | "metric" | "noprefixroute" | "anycast" | "home" | "mngtmpaddr" | "autojoin"
            | "proto" | "to" => return None,
            w => {
                if local.is_some() {
                    return None;
                }
                local = Some(cidr(w)?);
            }
        }
        i += 1;
    }
    let (node, link, cidr) = (node.clone(), dev?, local?);
    Some(step(if add { Op::AddAddr { node, link, cidr } } else { Op::DelAddr { node, link, cidr } }))
}

fn ip_route(node: &NodeName, args: &[String], v6: bool) -> Option<Item> {
    let (sub, rest) = args.split_first()?;
    let add = abbrev(sub, "add");
    if !add && !abbrev(sub, "delete") {
        return None;
    }
    let (mut dest, mut via, mut dev, mut onlink) = (None, None, None, false);
    let mut i = 0;
    let prefix = |w: &str| -> Option<Option<IpNet>> {
        if w == "default" {
            return Some(None);
        }
        // The kernel refuses a prefix with host bits set.
        cidr(w).filter(|n| n.trunc() == *n).map(Some)
    };
    while let Some(w) = rest.get(i) {
        let value = rest.get(i + 1);
        match w.as_str() {
            "to" => {
                dest = Some(prefix(value?)?);
                i += 1;
            }
            "via" => {
                let mut gw = value?;
                if gw == "inet" || gw == "inet6" {
                    i += 1;
                    gw = rest.get(i + 1)?;
                }
                via = Some(gw.parse::<IpAddr>().ok()?);
                i += 1;
            }
            "dev" | "oif" => {
                dev = Some(link_name(value?)?);
                i += 1;
            }
            "onlink" => onlink = true,
            // Ignored: the model keeps no route protocol.
            "proto" | "protocol" => {
                value?;
                i += 1;
            }
            "metric" | "priority" | "preference" | "table" | "scope" | "src" | "mtu" | "advmss" | "realm"
            | "realms" | "nexthop" | "nhid" | "type" | "tos" | "dsfield" | "from" | "encap" | "pref" | "expires"
            | "unicast" | "local" | "blackhole" | "unreachable" | "prohibit" | "throw" | "nat" | "broadcast"
            | "multicast" | "anycast" => return None,
            w => {
                if dest.is_some() {
                    return None;
                }
                dest = Some(prefix(w)?);
            }
        }
        i += 1;
    }
    let (node, dest) = (node.clone(), dest?);
    // A default route's family: the gateway's, else -6 (which the op cannot say for a device route).
    if dest.is_none() && v6 && !via.is_some_and(|g: IpAddr| g.is_ipv6()) {
        return None;
    }
    if !add {
        return Some(step(Op::DelRoute { node, dest, table: None }));
    }
    Some(match (via, dev) {
        (Some(gw), dev) => {
            let extra = dev.map(|dev| Extra::Dev { dev, onlink }).unwrap_or(Extra::None);
            let opts = RouteOpts::default();
            Item::Step(Step { op: Op::AddRoute { node, dest, hop: NextHop::Gateway(gw), opts }, extra })
        }
        (None, Some(dev)) => step(Op::AddRoute { node, dest, hop: NextHop::Device(dev), opts: RouteOpts::default() }),
        (None, None) => return None,
    })
}

fn brctl(node: &NodeName, args: &[String]) -> Item {
    let attach = |bridge: &String, ports: &[String], master: bool| -> Option<Item> {
        let bridge = link_name(bridge)?;
        let items = ports
            .iter()
            .map(|p| {
                let master = master.then(|| bridge.clone());
                Some((Conn::Seq, step(Op::SetMaster { node: node.clone(), link: link_name(p)?, master })))
            })
            .collect::<Option<Vec<_>>>()?;
        (!items.is_empty()).then_some(Item::List(items))
    };
    let item = match args {
        [cmd, bridge] if cmd == "addbr" => {
            link_name(bridge).map(|name| step(Op::AddBridge { node: node.clone(), name }))
        }
        [cmd, bridge, ports @ ..] if cmd == "addif" => attach(bridge, ports, true),
        [cmd, bridge, ports @ ..] if cmd == "delif" => attach(bridge, ports, false),
        _ => None,
    };
    item.unwrap_or_else(empty)
}

fn sysctl(node: &NodeName, args: &[String]) -> Item {
    let mut write = false;
    let mut items = Vec::new();
    for a in args {
        match a.as_str() {
            "-w" | "--write" => write = true,
            "-q" | "--quiet" | "-e" | "--ignore" => {}
            a if a.starts_with('-') => return empty(), // -p FILE, -n, -a: reads or files
            a => {
                // procps' sysctl writes KEY=VALUE with or without -w.
                let Some((key, value)) = a.split_once('=') else {
                    if write {
                        continue; // "sysctl -w KEY" fails; the others still run
                    }
                    return empty();
                };
                let op =
                    Op::SetSysctl { node: node.clone(), key: key.trim().to_string(), value: value.trim().to_string() };
                items.push((Conn::Seq, step(op)));
            }
        }
    }
    Item::List(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nn(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }
    fn ln(s: &str) -> LinkName {
        LinkName::new(s).unwrap()
    }
    fn ops(command: &str) -> Vec<Op> {
        ops_of(&nn("host"), command)
    }
    fn veth(node: &str, name: &str, peer_node: &str, peer: &str) -> Op {
        Op::AddVeth { node: nn(node), name: ln(name), peer_node: nn(peer_node), peer: ln(peer) }
    }
    fn up(node: &str, link: &str, up: bool) -> Op {
        Op::SetUp { node: nn(node), link: ln(link), up }
    }
    fn addr(node: &str, link: &str, cidr: &str) -> Op {
        Op::AddAddr { node: nn(node), link: ln(link), cidr: cidr.parse().unwrap() }
    }
    fn route(node: &str, dest: Option<&str>, hop: NextHop) -> Op {
        Op::AddRoute { node: nn(node), dest: dest.map(|d| d.parse().unwrap()), hop, opts: RouteOpts::default() }
    }
    fn gw(s: &str) -> NextHop {
        NextHop::Gateway(s.parse().unwrap())
    }

    #[test]
    fn netns_add_and_delete() {
        assert_eq!(ops("ip netns add jh_ns"), [Op::AddNode { node: nn("jh_ns") }]);
        assert_eq!(ops("ip netns delete jh_ns"), [Op::DelNode { node: nn("jh_ns") }]);
        assert_eq!(ops("ip netns del jh_ns"), [Op::DelNode { node: nn("jh_ns") }]);
        assert!(ops("ip netns list").is_empty());
        assert!(ops("ip netns set internet 1").is_empty());
        assert!(ops("ip netns add").is_empty());
    }

    #[test]
    fn link_add_veth_and_bridge() {
        assert_eq!(
            ops("ip link add veth-red type veth peer name vth-red-br"),
            [veth("host", "veth-red", "host", "vth-red-br")]
        );
        assert_eq!(ops("ip link add veth00 type veth peer veth01"), [veth("host", "veth00", "host", "veth01")]);
        assert_eq!(
            ops("ip link add enp0s3 index 2 address 02:ac:2e:7f:59:cd up type veth peer name isp0 index 3 netns internet"),
            [veth("host", "enp0s3", "internet", "isp0"), up("host", "enp0s3", true)]
        );
        assert_eq!(
            ops("ip link add name a netns red type veth peer name b up netns blue"),
            [veth("red", "a", "blue", "b"), up("blue", "b", true)]
        );
        assert_eq!(
            ops("ip link add docker0 index 3 address 02:42:da:a1:dc:1a type bridge"),
            [Op::AddBridge { node: nn("host"), name: ln("docker0") }]
        );
        assert_eq!(ops("ip l a br0 type bridge"), [Op::AddBridge { node: nn("host"), name: ln("br0") }]);
        // The kernel names the peer; options the model cannot follow.
        assert!(ops("ip link add v0 type veth").is_empty());
        assert!(ops("ip link add v0 mtu 9000 type veth peer name v1").is_empty());
        assert!(ops("ip link add br0 type bridge stp_state 1").is_empty());
        assert!(ops("ip link add link eth0 name mv0 type macvlan").is_empty());
    }

    #[test]
    fn link_set_and_del() {
        let n = || nn("host");
        assert_eq!(ops("ip link set veth-red up"), [up("host", "veth-red", true)]);
        assert_eq!(ops("ip link set dev veth-red down"), [up("host", "veth-red", false)]);
        assert_eq!(
            ops("ip link set veth-red-br master v-net-0"),
            [Op::SetMaster { node: n(), link: ln("veth-red-br"), master: Some(ln("v-net-0")) }]
        );
        assert_eq!(ops("ip link set p1 nomaster"), [Op::SetMaster { node: n(), link: ln("p1"), master: None }]);
        assert_eq!(
            ops("ip link set veth01 netns jh_ns"),
            [Op::MoveLink { node: n(), link: ln("veth01"), to: nn("jh_ns"), new_name: ln("veth01") }]
        );
        assert_eq!(
            ops("ip link set veth01 netns jh_ns name eth0 up"),
            [
                Op::MoveLink { node: n(), link: ln("veth01"), to: nn("jh_ns"), new_name: ln("eth0") },
                up("jh_ns", "eth0", true)
            ]
        );
        let rename = parse(&n(), "ip link set vth-red-br name veth-red-br");
        let op = Op::MoveLink { node: n(), link: ln("vth-red-br"), to: n(), new_name: ln("veth-red-br") };
        assert_eq!(rename, Item::List(vec![(Conn::Seq, Item::Step(Step { op, extra: Extra::Rename }))]));
        assert_eq!(ops("ip link del veth-red"), [Op::DelLink { node: n(), link: ln("veth-red") }]);
        assert_eq!(ops("ip link delete dev v0 type veth"), [Op::DelLink { node: n(), link: ln("v0") }]);
        assert!(ops("ip link set veth-red mtu 1400").is_empty());
        assert!(ops("ip link show veth-red").is_empty());
        assert!(ops("ip link").is_empty());
    }

    #[test]
    fn addresses() {
        assert_eq!(ops("ip addr add 10.201.0.1/24 brd + dev br0"), [addr("host", "br0", "10.201.0.1/24")]);
        assert_eq!(ops("ip addr add 10.201.0.2/24 brd - dev br0"), [addr("host", "br0", "10.201.0.2/24")]);
        assert_eq!(
            ops("ip address add 10.201.0.1/24 brd 10.201.0.255 dev br0"),
            [addr("host", "br0", "10.201.0.1/24")]
        );
        assert_eq!(ops("ip -n red addr add 192.168.15.1 dev veth-red"), [addr("red", "veth-red", "192.168.15.1/32")]);
        assert_eq!(ops("ip a a fd00::1/64 dev eth0"), [addr("host", "eth0", "fd00::1/64")]);
        assert_eq!(
            ops("ip addr del 10.0.0.1/24 dev eth0"),
            [Op::DelAddr { node: nn("host"), link: ln("eth0"), cidr: "10.0.0.1/24".parse().unwrap() }]
        );
        assert!(ops("ip addr show").is_empty());
        assert!(ops("ip a").is_empty());
        assert!(ops("ip addr add 10.0.0.1/24 dev eth0 scope host").is_empty());
        assert!(ops("ip addr add 10.0.0.1/24").is_empty());
    }

    #[test]
    fn routes() {
        assert_eq!(ops("ip route add default via 10.0.0.1"), [route("host", None, gw("10.0.0.1"))]);
        assert_eq!(
            ops("ip route add 192.168.1.0/24 dev eth0"),
            [route("host", Some("192.168.1.0/24"), NextHop::Device(ln("eth0")))]
        );
        assert_eq!(
            ops("ip r add 10.9.0.0/16 via 10.0.0.1 proto static"),
            [route("host", Some("10.9.0.0/16"), gw("10.0.0.1"))]
        );
        let onlink = parse(&nn("host"), "ip route add default via 192.168.30.1 dev ens2f0 onlink");
        let op = route("host", None, gw("192.168.30.1"));
        let extra = Extra::Dev { dev: ln("ens2f0"), onlink: true };
        assert_eq!(onlink, Item::List(vec![(Conn::Seq, Item::Step(Step { op: op.clone(), extra }))]));
        assert_eq!(ops("ip route add default via 192.168.30.1 dev ens2f0 onlink"), [op]);
        assert_eq!(ops("ip route del default"), [Op::DelRoute { node: nn("host"), dest: None, table: None }]);
        assert_eq!(
            ops("ip route delete 10.9.0.0/16 via 10.0.0.1"),
            [Op::DelRoute { node: nn("host"), dest: Some("10.9.0.0/16".parse().unwrap()), table: None }]
        );
        assert_eq!(ops("ip -6 route add default via fd00::1"), [route("host", None, gw("fd00::1"))]);
        assert!(ops("ip -6 route add default dev eth0").is_empty(), "the op cannot say IPv6");
        assert!(ops("ip route add 10.0.0.1/24 dev eth0").is_empty(), "host bits set");
        assert!(ops("ip route add 10.0.0.0/24 dev eth0 metric 10").is_empty());
        assert!(ops("ip route add 10.0.0.0/24 dev eth0 table 100").is_empty());
        assert!(ops("ip route get 10.0.0.1").is_empty());
        assert!(ops("ip route").is_empty());
    }

    #[test]
    fn brctl_and_sysctl() {
        let n = || nn("host");
        assert_eq!(ops("brctl addbr br0"), [Op::AddBridge { node: n(), name: ln("br0") }]);
        assert_eq!(
            ops("brctl addif br0 a b"),
            [
                Op::SetMaster { node: n(), link: ln("a"), master: Some(ln("br0")) },
                Op::SetMaster { node: n(), link: ln("b"), master: Some(ln("br0")) }
            ]
        );
        assert_eq!(ops("brctl delif br0 a"), [Op::SetMaster { node: n(), link: ln("a"), master: None }]);
        assert!(ops("brctl show").is_empty());
        let set = |k: &str, v: &str| Op::SetSysctl { node: n(), key: k.into(), value: v.into() };
        assert_eq!(ops("sysctl -w net.ipv4.ip_forward=1"), [set("net.ipv4.ip_forward", "1")]);
        assert_eq!(ops("sysctl -q net.ipv4.ip_forward=1"), [set("net.ipv4.ip_forward", "1")]);
        assert_eq!(ops("sysctl -w 'net.ipv4.ping_group_range=0 0'"), [set("net.ipv4.ping_group_range", "0 0")]);
        assert!(ops("sysctl -n net.ipv4.ip_forward").is_empty());
        assert!(ops("sysctl net.ipv4.ip_forward").is_empty());
        assert!(ops("sysctl -p /etc/sysctl.conf").is_empty());
    }

    #[test]
    fn namespaces_and_batches() {
        assert_eq!(ops("ip -n red link set veth-red up"), [up("red", "veth-red", true)]);
        assert_eq!(ops("ip netns exec red ip link set veth-red up"), [up("red", "veth-red", true)]);
        assert_eq!(ops("ip netns exec red sysctl -w net.ipv4.ip_forward=1").len(), 1);
        // docker::run_ip's form.
        let batch = "printf '%s\\n' 'netns set internet 1' 'link add enp0s3 index 2 address 02:ac:2e:7f:59:cd up type veth peer name isp0 index 3 netns internet' | ip -batch -";
        assert_eq!(ops(batch), [veth("host", "enp0s3", "internet", "isp0"), up("host", "enp0s3", true)]);
        assert_eq!(ops("printf '%s\\n' 'link add b0 type bridge' 'link set b0 up' | ip -n c -b -").len(), 2);
        assert_eq!(ops("echo 'link add b0 type bridge' | ip -batch -").len(), 1);
        assert!(ops("ip -batch cmds.txt").is_empty());
        assert!(ops("ip -batch -").is_empty());
        assert!(ops("ip -all netns exec ip link set lo up").is_empty());
    }

    #[test]
    fn shell_lists() {
        assert_eq!(
            ops("sh -c 'ip addr add 10.201.0.1/24 brd + dev br0 && ip addr add 10.201.0.2/24 brd - dev br0 && ip -o -4 addr show dev br0'"),
            [addr("host", "br0", "10.201.0.1/24"), addr("host", "br0", "10.201.0.2/24")]
        );
        assert_eq!(
            ops("ip netns add jh_ns; ip link add veth00 type veth peer name veth01"),
            [Op::AddNode { node: nn("jh_ns") }, veth("host", "veth00", "host", "veth01")]
        );
        assert_eq!(ops("mount -t tmpfs none /run/netns && ip addr show"), []);
        assert_eq!(
            ops("bash -ec \"ip link add br0 type bridge\nip link set br0 up # bring it up\n\""),
            [Op::AddBridge { node: nn("host"), name: ln("br0") }, up("host", "br0", true)]
        );
        assert_eq!(ops("ip link add br0 type bridge 2>/dev/null || true").len(), 1);
        assert_eq!(ops("ip link add br0 type bridge > /dev/null 2>&1 & wait").len(), 1);
        assert_eq!(ops("ip netns exec c sh -c 'ip link set lo up'"), [up("c", "lo", true)]);
        // Words the shell makes: not followed.
        assert!(ops("for n in a b; do ip link add $n type bridge; done").is_empty());
        assert!(ops("sh -c 'ip link add br$i type bridge'").is_empty());
        assert!(ops("(ip link add br0 type bridge)").is_empty());
        assert!(ops("echo 'ip link add br0 type bridge'").is_empty());
        assert!(ops("ping -c1 10.0.0.1; iptables -t nat -S").is_empty());
        assert!(ops("sh -c 'unterminated").is_empty());
        // Conditions are kept for the apply.
        let Item::List(list) = parse(&nn("host"), "ip link add a type bridge || ip link add b type bridge") else {
            panic!("a list");
        };
        assert_eq!(list.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [Conn::Seq, Conn::Or]);
    }

    #[test]
    fn printf_like_the_shell() {
        assert_eq!(printf("%s\\n", &["a".into(), "b c".into()]), "a\nb c\n");
        assert_eq!(printf("x\\n", &[]), "x\n");
        assert_eq!(printf("%s=%s;", &["a".into(), "1".into(), "b".into()]), "a=1;b=;");
        assert_eq!(printf("100%%", &[]), "100%");
    }
}
