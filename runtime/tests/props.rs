//! Property tests of what a lab's arguments go through before the kernel sees them:
//! names, addresses, sysctl keys, exec_in's command lines, the words `--explain`
//! prints and the iptables rules netlab writes. No kernel, no root.
//!
//! Each property runs PROPTEST_CASES cases (proptest's default, 256, when unset);
//! `PROPTEST_CASES=100000 cargo test --release -p netlab-runtime --test props` is the
//! long run (book: Robustness).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use ipnet::IpNet;
use netlab_runtime::backend::kernel::addr::{parse_cidr, parse_ip, parse_prefix};
use netlab_runtime::backend::kernel::exec::CommandLine;
use netlab_runtime::backend::kernel::sysctl::path_for;
use netlab_runtime::model::firewall::{
    rule_link, BridgeFilter, FilterChain, FirewallChange, ForwardAccept, Masquerade, Policy, PortForward, Proto,
};
use netlab_runtime::model::{EtcFile, NextHop, Op, ServerSpec};
use netlab_runtime::render::ip::{iptables_commands, op_commands, program_line, q, sysctl_key};
use netlab_runtime::{Error, LinkName, NodeName};
use proptest::prelude::*;

/// Any text, with the characters that matter to the parsers over-represented.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,24}",
        "[a-z0-9 '\"\\\\|;$&<>()*?~!#=%/:.\\t\\n-]{0,24}",
        "[a-z0-9_.-]{0,20}",
        "[a-z\\x00-\\x1f\\x7f\u{a0}\u{2028}]{0,8}",
    ]
}

/// What the kernel's dev_valid_name() accepts, with the NUL that netlink's C string
/// would cut the name at.
fn kernel_takes_link_name(name: &str) -> bool {
    let c_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || c_space(b))
}

/// Makes `s` a link name whatever it holds (its refused characters replaced), so
/// the strategies below need no filter that would reject many cases.
fn as_link_name(s: &str, also: &[char]) -> Option<LinkName> {
    let s: String = s
        .chars()
        .map(|c| if c.is_whitespace() || matches!(c, '/' | ':' | '\0') || also.contains(&c) { '_' } else { c })
        .collect();
    LinkName::new(&s).ok()
}

/// A valid link name, from the whole range the kernel takes (quotes, `$`, Unicode).
fn link_name() -> impl Strategy<Value = LinkName> {
    prop_oneof!["[a-z][a-z0-9]{0,14}", "[!-~]{1,15}", "\\PC{1,3}"]
        .prop_filter_map("'.' or '..'", |s| as_link_name(&s, &[]))
}

/// A link name a firewall rule can carry.
fn rule_link_name() -> impl Strategy<Value = LinkName> {
    prop_oneof!["[a-z][a-z0-9]{0,14}", "[!-~]{1,15}"]
        .prop_filter_map("'.' or '..'", |s| as_link_name(&s, &['"']).and_then(|l| rule_link(l.as_str()).ok()))
}

/// The words of a line as iptables-restore and nft read them: split at blanks,
/// a double-quoted part is one word without its quotes (neither has an escape for '"').
fn quoted_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => continue,
            '"' => {
                let mut w = String::new();
                loop {
                    match chars.next()? {
                        '"' => break,
                        c => w.push(c),
                    }
                }
                words.push(w);
            }
            c => {
                let mut w = c.to_string();
                while let Some(&c) = chars.peek() {
                    if c == ' ' || c == '\t' || c == '"' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                words.push(w);
            }
        }
    }
    Some(words)
}

fn node_name() -> impl Strategy<Value = NodeName> {
    "[A-Za-z0-9_.-]{1,64}".prop_filter_map("not a node name", |s| NodeName::new(&s).ok())
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![any::<Ipv4Addr>().prop_map(IpAddr::V4), any::<Ipv6Addr>().prop_map(IpAddr::V6)]
}

fn net_of(v6: bool) -> BoxedStrategy<IpNet> {
    let ip = if v6 {
        any::<Ipv6Addr>().prop_map(IpAddr::V6).boxed()
    } else {
        any::<Ipv4Addr>().prop_map(IpAddr::V4).boxed()
    };
    let max: u8 = if v6 { 128 } else { 32 };
    (ip, 0..=max).prop_map(|(ip, p)| IpNet::new(ip, p).expect("prefix in range")).boxed()
}

fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![net_of(false), net_of(true)]
}

proptest! {
    // Failures are printed with their minimal input; no files are left in the tree.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Every name netlab takes, the kernel takes too (and means the same by it); the
    /// plain names the tutorials use are all taken; a refusal says why.
    #[test]
    fn link_names_are_what_the_kernel_takes(name in text()) {
        match LinkName::new(&name) {
            Ok(l) => {
                prop_assert!(kernel_takes_link_name(&name), "{name:?} taken, the kernel would refuse it");
                prop_assert_eq!(l.as_str(), name.as_str());
                prop_assert_eq!(l.to_string(), name);
            }
            Err(e) => {
                let plain = name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
                prop_assert!(!(plain && kernel_takes_link_name(&name)), "{name:?} refused: {e}");
                prop_assert!(matches!(e, Error::BadLinkName { .. }), "{e:?}");
            }
        }
    }

    /// A node name becomes a file under /run/netns: one plain component, no way out.
    #[test]
    fn node_names_are_one_safe_path_component(name in text()) {
        if let Ok(n) = NodeName::new(&name) {
            let path = Path::new("/run/netns").join(n.as_str());
            prop_assert_eq!(path.parent(), Some(Path::new("/run/netns")));
            prop_assert_eq!(path.file_name().and_then(|f| f.to_str()), Some(name.as_str()));
            prop_assert!(name.is_ascii() && name.len() <= 64);
        }
    }

    /// Any address with a prefix length parses to itself, host bits kept; the same
    /// address without a prefix is refused (a silent /32), and a network prefix
    /// refuses host bits and names the network meant.
    #[test]
    fn cidrs_round_trip(n in net()) {
        let written = n.to_string();
        prop_assert_eq!(parse_cidr(&written).expect("a valid CIDR"), n);
        prop_assert_eq!(parse_cidr(&format!(" {written}\t")).expect("trimmed"), n);
        let bare = n.addr().to_string();
        let err = parse_cidr(&bare).expect_err("no prefix length").to_string();
        prop_assert!(err.contains("prefix length is missing"), "{err}");
        prop_assert_eq!(parse_ip(&bare).expect("an address"), n.addr());
        match parse_prefix(&written) {
            Ok(p) => prop_assert_eq!(p, Some(n.trunc())),
            Err(e) => {
                prop_assert!(n.trunc() != n);
                prop_assert!(e.to_string().contains("host bits"), "{e}");
            }
        }
    }

    /// Whatever text is given as an address, parsing does not panic, and what it
    /// accepts is what std reads as an address with a prefix length in range.
    #[test]
    fn address_text_is_classified(s in prop_oneof![text(), "[0-9./:a-f]{0,20}"]) {
        let by_std = s.trim().split_once('/').and_then(|(a, p)| {
            let a: IpAddr = a.parse().ok()?;
            let p: u8 = p.parse().ok()?;
            let max = if a.is_ipv4() { 32 } else { 128 };
            (p <= max).then_some((a, p))
        });
        match parse_cidr(&s) {
            Ok(n) => prop_assert_eq!(Some((n.addr(), n.prefix_len())), by_std, "{:?}", s),
            Err(e) => {
                prop_assert!(by_std.is_none(), "{s:?} refused: {e}");
                prop_assert!(matches!(e, Error::BadAddress { .. }), "{:?}", e);
            }
        }
        let _ = parse_ip(&s);
        let _ = parse_prefix(&s);
    }

    /// A sysctl key netlab accepts stays under /proc/sys/net, and rendering it for
    /// `sysctl -w` (dotted where exact) names the same file.
    #[test]
    fn sysctl_keys_render_to_the_same_file(
        parts in prop::collection::vec("[a-z0-9_.-]{1,8}|[a-z]{1,8}", 1..5),
        slash in any::<bool>(),
        junk in text(),
    ) {
        let key = format!("net{}{}", if slash { "/" } else { "." }, parts.join(if slash { "/" } else { "." }));
        for key in [key, junk] {
            if let Ok(path) = path_for(&key) {
                prop_assert!(path.starts_with("/proc/sys/net"), "{key:?} -> {path:?}");
                prop_assert!(path.components().all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_))), "{path:?}");
                let rendered = sysctl_key(&key);
                prop_assert_eq!(path_for(&rendered).ok(), Some(path), "{} rendered as {}", key, rendered);
            }
        }
    }

    /// A word `--explain` prints reads back, through a shell's rules, as that word.
    #[test]
    fn quoted_words_read_back(word in text()) {
        let quoted = q(&word);
        prop_assert_eq!(shell_words::split(&quoted).expect("q() closes its quotes"), vec![word.clone()], "{}", quoted);
        if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "_-./=".contains(c)) {
            prop_assert_eq!(quoted, word, "a plain word stays plain");
        }
    }

    /// exec_in splits a command line into the words a shell would: words quoted with
    /// q() come back as they were, whatever they hold.
    #[test]
    fn command_lines_split_into_their_words(words in prop::collection::vec(text(), 1..6)) {
        // No program argument can hold a NUL (command_lines_are_classified has those).
        let words: Vec<String> = words.into_iter().map(|w| w.replace('\0', "")).collect();
        let line = words.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ");
        let cmd = CommandLine::parse(&line).expect("a quoted line");
        prop_assert_eq!(&cmd.argv, &words);
        prop_assert_eq!(&cmd.program, &words[0]);
        // What --explain prints for it runs the same words.
        let shown = program_line(&line);
        let again = shell_words::split(&shown).expect("explain closes its quotes");
        if cmd.shell.is_none() {
            prop_assert_eq!(again, words);
        } else {
            prop_assert_eq!(again, vec!["sh".to_string(), "-c".to_string(), line]);
        }
    }

    /// Any text given to exec_in is a command, or the lab's mistake with a reason:
    /// never a panic, never an empty program.
    #[test]
    fn command_lines_are_classified(line in text()) {
        match CommandLine::parse(&line) {
            Ok(cmd) => {
                prop_assert!(!line.contains('\0'));
                prop_assert_eq!(Some(&cmd.program), cmd.argv.first());
                prop_assert_eq!(Some(cmd.argv.clone()), shell_words::split(&line).ok());
            }
            Err(Error::BadCommand { reason, .. }) => prop_assert!(
                line.contains('\0') || shell_words::split(&line).map(|w| w.is_empty()).unwrap_or(true),
                "{line:?} refused: {reason}"
            ),
            Err(e) => prop_assert!(false, "{line:?}: {e:?}"),
        }
    }

    /// Every command `--explain` and `netlab export` print for an op is a valid shell
    /// line that hands the op's names to `ip` as single words.
    #[test]
    fn explained_ops_are_shell_lines(
        node in node_name(), other in node_name(), a in link_name(), b in link_name(),
        cidr in net(), gw in ip(), body in text(), v6 in any::<bool>(), port in 1u16..,
    ) {
        let ops = vec![
            (Op::AddNode { node: node.clone() }, vec![node.to_string()]),
            (Op::AddVeth { node: node.clone(), name: a.clone(), peer_node: other.clone(), peer: b.clone() }, vec![a.to_string(), b.to_string()]),
            (Op::AddVeth { node: node.clone(), name: a.clone(), peer_node: node.clone(), peer: b.clone() }, vec![a.to_string(), b.to_string()]),
            (Op::AddBridge { node: node.clone(), name: a.clone() }, vec![a.to_string()]),
            (Op::SetUp { node: node.clone(), link: a.clone(), up: v6 }, vec![a.to_string()]),
            (Op::SetMaster { node: node.clone(), link: a.clone(), master: Some(b.clone()) }, vec![a.to_string(), b.to_string()]),
            (Op::MoveLink { node: node.clone(), link: a.clone(), to: other.clone(), new_name: b.clone() }, vec![a.to_string(), b.to_string()]),
            (Op::AddAddr { node: node.clone(), link: a.clone(), cidr }, vec![a.to_string(), cidr.to_string()]),
            (Op::AddRoute { node: node.clone(), dest: Some(cidr.trunc()), hop: NextHop::Device(a.clone()), opts: Default::default() }, vec![a.to_string()]),
            (Op::AddRoute { node: node.clone(), dest: None, hop: NextHop::Gateway(gw), opts: Default::default() }, vec![gw.to_string()]),
            (Op::SetHostname { node: node.clone(), name: body.clone() }, vec![body.clone()]),
            (Op::WriteFile { node: node.clone(), file: EtcFile::Hosts, text: body.clone() }, vec![]),
            (Op::StartServer { node: node.clone(), server: ServerSpec::Http { addr: SocketAddr::new(gw, port), body: body.clone(), status: 200 } }, vec![body.clone()]),
            (Op::Exec { node: node.clone(), command: body.clone() }, vec![]),
        ];
        for host in ["host", node.as_str()] {
            // A command line exec_in refuses is shown as written (the lab stops there).
            let refused = |op: &Op| matches!(op, Op::Exec { command, .. } if CommandLine::parse(command).is_err());
            for (op, names) in ops.iter().filter(|(op, _)| !refused(op)) {
                let lines = op_commands(op, host);
                if lines.is_empty() {
                    // Only the host needs no making.
                    prop_assert!(matches!(op, Op::AddNode { node: n } if n.as_str() == host), "{op:?}");
                    continue;
                }
                let mut words = Vec::new();
                for line in &lines {
                    let split = shell_words::split(line);
                    prop_assert!(split.is_ok(), "{op:?} explained as {line:?}");
                    words.extend(split.unwrap_or_default());
                }
                for name in names {
                    prop_assert!(words.iter().any(|w| w == name), "{name:?} is not one word of {lines:?}");
                }
            }
        }
    }

    /// A firewall rule is written for the family of its addresses, as one appended
    /// rule whose words carry what the lab asked for, and that `-D` takes out again.
    #[test]
    fn firewall_rules_carry_their_arguments(
        v6 in any::<bool>(), link in rule_link_name(), port in 1u16.., to_port in 1u16..,
        tcp in any::<bool>(), local in any::<bool>(), src in prop::option::of(net()), dst in prop::option::of(net()),
        source in net(), to_ip in ip(),
    ) {
        let want_v6 = |n: Option<&IpNet>| n.map(|n| n.addr().is_ipv6());
        let cases = vec![
            (FirewallChange::Masquerade(Masquerade { source, out: Some(link.clone()), not_out: None }), want_v6(Some(&source)), "nat", "POSTROUTING"),
            (FirewallChange::PortForward(PortForward { proto: if tcp { Proto::Tcp } else { Proto::Udp }, port, to: SocketAddr::new(to_ip, to_port), in_link: Some(link.clone()), local }), Some(to_ip.is_ipv6()), "nat", "PREROUTING"),
            (FirewallChange::ForwardAccept(ForwardAccept { in_link: Some(link.clone()), out_link: None, source: src, destination: dst.filter(|d| src.is_none_or(|s| s.addr().is_ipv6() == d.addr().is_ipv6())) }), want_v6(src.as_ref().or(dst.as_ref())), "filter", "FORWARD"),
            (FirewallChange::ChainPolicy(FilterChain::Forward, if v6 { Policy::Drop } else { Policy::Accept }), None, "filter", "FORWARD"),
        ];
        for (change, family, table, chain) in cases {
            let input = change.restore_input();
            prop_assert_eq!(input.v4.is_some(), family != Some(true), "{:?}", change);
            prop_assert_eq!(input.v6.is_some(), family != Some(false), "{:?}", change);
            // iptables-restore reads each rule's words back as written.
            for text in [&input.v4, &input.v6].into_iter().flatten() {
                for line in text.lines().filter(|l| l.starts_with('-')) {
                    let words = quoted_words(line).expect("quotes closed");
                    prop_assert_eq!(words, line.split_whitespace().map(String::from).collect::<Vec<_>>());
                }
            }
            let commands = iptables_commands(&input);
            prop_assert!(!commands.is_empty());
            for c in &commands {
                match family {
                    Some(true) => prop_assert_eq!(c.tool, "ip6tables"),
                    Some(false) => prop_assert_eq!(c.tool, "iptables"),
                    None => {}
                }
                prop_assert_eq!(&c.table, table);
                prop_assert!(c.args.get(1).is_some_and(|a| a == chain || a == "OUTPUT"), "{:?}", c.args);
                let words = shell_words::split(&c.line()).expect("a shell line");
                prop_assert_eq!(&words[words.len() - c.args.len()..], &c.args[..]);
                match &change {
                    FirewallChange::ChainPolicy(..) => prop_assert!(c.undo().is_none()),
                    _ if c.args[1] == "OUTPUT" => {}
                    _ => {
                        prop_assert!(c.args.windows(2).any(|w| (w[0] == "-i" || w[0] == "-o") && w[1] == link.as_str()), "{:?}", c.args);
                        let undo = c.undo().expect("an appended rule");
                        prop_assert_eq!(&undo.args[0], "-D");
                        prop_assert_eq!(&undo.args[1..], &c.args[1..]);
                    }
                }
                if let FirewallChange::PortForward(pf) = &change {
                    let port = pf.port.to_string();
                    prop_assert!(c.args.windows(2).any(|w| w[0] == "--dport" && w[1] == port));
                    prop_assert!(c.args.windows(2).any(|w| w[0] == "--to-destination" && w[1].parse::<SocketAddr>().ok() == Some(pf.to)));
                }
                if let FirewallChange::Masquerade(m) = &change {
                    let s = m.source.to_string();
                    prop_assert_eq!(c.args.windows(2).any(|w| w[0] == "-s" && w[1] == s), m.source.prefix_len() > 0);
                }
            }
        }
    }

    /// The bridge filter's nft script names each bridge as the lab did.
    #[test]
    fn bridge_filter_names_read_back(ins in prop::collection::vec(rule_link_name(), 0..4), outs in prop::collection::vec(rule_link_name(), 0..4), drop in any::<bool>()) {
        let filter = BridgeFilter {
            forward_policy: Some(if drop { Policy::Drop } else { Policy::Accept }),
            forward_accepts: ins.iter().zip(outs.iter()).map(|(i, o)| ForwardAccept { in_link: Some(i.clone()), out_link: Some(o.clone()), ..ForwardAccept::default() }).collect(),
        };
        let nft = filter.render_nft();
        let accepts: Vec<Vec<String>> = nft.lines().filter(|l| l.trim_end().ends_with("accept") && l.contains("meta")).map(|l| quoted_words(l).expect("quotes closed")).collect();
        prop_assert_eq!(accepts.len(), filter.forward_accepts.len());
        for (words, a) in accepts.iter().zip(&filter.forward_accepts) {
            let want = ["meta", "ibrname", a.in_link.as_ref().map_or("", |l| l.as_str()), "meta", "obrname", a.out_link.as_ref().map_or("", |l| l.as_str()), "accept"];
            prop_assert_eq!(words.iter().map(String::as_str).collect::<Vec<_>>(), want.to_vec(), "{}", nft);
        }
    }
}
