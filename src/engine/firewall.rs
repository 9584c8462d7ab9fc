//! Bindings for NAT and the forwarding filter (nftables inside the node).

use std::path::Path;
use std::rc::Rc;

use netlab_runtime::backend::kernel::addr::{parse_cidr, parse_prefix};
use netlab_runtime::model::firewall::{
    rule_link, Action, CtState, FilterChain, FilterRule, FirewallChange, ForwardAccept, Masquerade, Policy,
    PortForward, PortRange, Proto, RejectWith, RuleFile, RuleFileKind, RuleProto,
};
use netlab_runtime::model::Op;
use netlab_runtime::render::iptables::IptTable;
use netlab_runtime::{Error, LinkName};
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::session::Session;
use super::values::{opt_str, reject_unknown, to_rhai, RhaiResult};

fn link_opt(ctx: &NativeCallContext, opts: &Map, key: &str) -> RhaiResult<Option<LinkName>> {
    opt_str(ctx, opts, key)?.map(|s| to_rhai(ctx, rule_link(&s))).transpose()
}

/// The keys firewall_rule() takes.
const RULE_KEYS: &[&str] =
    &["chain", "action", "proto", "sport", "dport", "iif", "oif", "src", "dst", "state", "reject_with"];

/// An option firewall_rule() cannot use, at the line.
fn bad(
    ctx: &NativeCallContext,
    option: &str,
    value: impl std::fmt::Display,
    reason: String,
) -> Box<rhai::EvalAltResult> {
    let help = Some(
        "e.g. firewall_rule(node, #{chain: \"input\", proto: \"tcp\", dport: 80, iif: \"eth0\", \
         state: [\"new\"], src: \"10.0.0.0/24\", action: \"accept\"})"
            .to_string(),
    );
    let err = Error::BadOption { option: option.to_string(), value: value.to_string(), reason, help };
    super::values::failure(super::values::Failure::Error(Rc::new(err)), ctx.call_position())
}

/// A port (80) or a range ("1000:2000").
fn port_range(ctx: &NativeCallContext, key: &str, v: &Dynamic) -> RhaiResult<PortRange> {
    let port = |n: i64| u16::try_from(n).ok().filter(|p| *p > 0);
    let range = if let Ok(n) = v.as_int() {
        port(n).map(|p| PortRange { first: p, last: p })
    } else if let Ok(text) = v.clone().into_string() {
        let (a, b) = text.split_once(':').unwrap_or((&text, &text));
        match (a.trim().parse().ok().and_then(port), b.trim().parse().ok().and_then(port)) {
            (Some(first), Some(last)) if first <= last => Some(PortRange { first, last }),
            _ => None,
        }
    } else {
        None
    };
    range.ok_or_else(|| bad(ctx, key, v, "a port is 1 to 65535, a range \"low:high\"".into()))
}

/// firewall_rule()'s options as a rule iptables would take.
fn filter_rule(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<FilterRule> {
    reject_unknown(ctx, opts, RULE_KEYS)?;
    let required = |key: &str, what: &str| -> RhaiResult<String> {
        opt_str(ctx, opts, key)?.ok_or_else(|| bad(ctx, key, "(none)", format!("firewall_rule() needs {key}: {what}")))
    };
    let chain_name = required("chain", "\"input\", \"forward\" or \"output\"")?;
    let chain = FilterChain::parse(&chain_name)
        .ok_or_else(|| bad(ctx, "chain", &chain_name, "the chain is \"input\", \"forward\" or \"output\"".into()))?;
    let action_name = required("action", "\"accept\", \"drop\" or \"reject\"")?;
    let reject_with = match opt_str(ctx, opts, "reject_with")? {
        None => None,
        Some(w) => Some(
            RejectWith::parse(&w)
                .ok_or_else(|| bad(ctx, "reject_with", &w, format!("it is one of {}", RejectWith::NAMES.join(", "))))?,
        ),
    };
    let action = match (action_name.to_ascii_lowercase().as_str(), reject_with) {
        ("accept", None) => Action::Accept,
        ("drop", None) => Action::Drop,
        ("reject", with) => Action::Reject(with.unwrap_or(RejectWith::PortUnreachable)),
        ("accept" | "drop", Some(_)) => {
            return Err(bad(ctx, "reject_with", &action_name, "reject_with goes with action \"reject\"".into()))
        }
        _ => return Err(bad(ctx, "action", &action_name, "the action is \"accept\", \"drop\" or \"reject\"".into())),
    };
    let mut rule = FilterRule::new(chain, action);
    if let Some(p) = opt_str(ctx, opts, "proto")? {
        rule.proto = Some(
            RuleProto::parse(&p)
                .ok_or_else(|| bad(ctx, "proto", &p, "proto is \"tcp\", \"udp\", \"icmp\" or \"icmpv6\"".into()))?,
        );
    }
    rule.sport = opts.get("sport").map(|v| port_range(ctx, "sport", v)).transpose()?;
    rule.dport = opts.get("dport").map(|v| port_range(ctx, "dport", v)).transpose()?;
    rule.in_link = link_opt(ctx, opts, "iif")?;
    rule.out_link = link_opt(ctx, opts, "oif")?;
    let net = |key: &str| -> RhaiResult<Option<ipnet::IpNet>> {
        opt_str(ctx, opts, key)?.map(|s| to_rhai(ctx, parse_cidr(&s).map(|n| n.trunc()))).transpose()
    };
    rule.source = net("src")?;
    rule.destination = net("dst")?;
    if let Some(v) = opts.get("state") {
        let names: Vec<Dynamic> = match v.clone().into_array() {
            Ok(a) => a,
            Err(_) => vec![v.clone()],
        };
        let known = || format!("a state is one of {}", CtState::NAMES.join(", "));
        for name in &names {
            let text = name.clone().into_string().map_err(|_| bad(ctx, "state", name, known()))?;
            rule.states.push(CtState::parse(&text).ok_or_else(|| bad(ctx, "state", &text, known()))?);
        }
        if rule.states.is_empty() {
            return Err(bad(ctx, "state", "[]", known()));
        }
        rule.states.sort();
        rule.states.dedup();
    }
    if let Err((key, reason)) = rule.check() {
        let value = opts.get(key).map(|v| v.to_string()).unwrap_or_default();
        return Err(bad(ctx, key, value, reason));
    }
    Ok(rule)
}

pub fn register(engine: &mut Engine, s: &Rc<Session>, lab_dir: &Path) {
    for kind in [RuleFileKind::Nft, RuleFileKind::IptablesRestore] {
        let (ss, dir) = (s.clone(), lab_dir.to_path_buf());
        let name = match kind {
            RuleFileKind::Nft => "nft_file",
            RuleFileKind::IptablesRestore => "iptables_restore",
        };
        engine.register_fn(name, move |ctx: NativeCallContext, node: Dynamic, file: &str| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                super::values::runtime_error(&ctx, format!("cannot read {file} ({}): {e}", path.display()))
            })?;
            let file = RuleFile { kind, name: file.to_string(), text };
            ss.apply(&ctx, Op::Firewall { node, change: FirewallChange::File(file) }).map(|_| ())
        });
    }

    let ss = s.clone();
    let masq = move |ctx: NativeCallContext, node: Dynamic, source: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["oif", "not_oif"])?;
        let node = ss.node(&ctx, &node)?;
        let source = to_rhai(&ctx, parse_prefix(source))?.unwrap_or_else(|| "0.0.0.0/0".parse().expect("valid"));
        let rule =
            Masquerade { source, out: link_opt(&ctx, &opts, "oif")?, not_out: link_opt(&ctx, &opts, "not_oif")? };
        ss.apply(&ctx, Op::Firewall { node, change: FirewallChange::Masquerade(rule) }).map(|_| ())
    };
    let m = masq.clone();
    engine.register_fn("masquerade", move |ctx: NativeCallContext, node: Dynamic, source: &str| {
        m(ctx, node, source, Map::new())
    });
    engine.register_fn("masquerade", masq);

    let ss = s.clone();
    let forward = move |ctx: NativeCallContext, node: Dynamic, port: i64, to: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["proto", "iif", "local"])?;
        let node = ss.node(&ctx, &node)?;
        let bad = |value: String, reason: &str| Error::BadAddress {
            value,
            expected: "port forward",
            reason: reason.into(),
            help: Some("e.g. port_forward(host, 8080, \"10.0.0.2:80\")".into()),
        };
        let port = to_rhai(
            &ctx,
            u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| bad(port.to_string(), "ports are 1 to 65535")),
        )?;
        let to = to_rhai(&ctx, to.parse().map_err(|_| bad(to.to_string(), "not an IP:port")))?;
        let proto = match opt_str(&ctx, &opts, "proto")?.as_deref() {
            None | Some("tcp") => Proto::Tcp,
            Some("udp") => Proto::Udp,
            Some(other) => return to_rhai(&ctx, Err(bad(other.to_string(), "proto is \"tcp\" or \"udp\""))),
        };
        let local = match opts.get("local") {
            None => true,
            Some(v) => v.as_bool().map_err(|_| super::values::type_error(&ctx, "true or false", v))?,
        };
        let rule = PortForward { proto, port, to, in_link: link_opt(&ctx, &opts, "iif")?, local };
        ss.apply(&ctx, Op::Firewall { node, change: FirewallChange::PortForward(rule) }).map(|_| ())
    };
    let f = forward.clone();
    engine.register_fn("port_forward", move |ctx: NativeCallContext, node: Dynamic, port: i64, to: &str| {
        f(ctx, node, port, to, Map::new())
    });
    engine.register_fn("port_forward", forward);

    for (name, chain) in [
        ("input_policy", FilterChain::Input),
        ("forward_policy", FilterChain::Forward),
        ("output_policy", FilterChain::Output),
    ] {
        let ss = s.clone();
        engine.register_fn(name, move |ctx: NativeCallContext, node: Dynamic, policy: &str| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            let policy = match policy.to_ascii_lowercase().as_str() {
                "drop" => Policy::Drop,
                "accept" => Policy::Accept,
                _ => {
                    return to_rhai(
                        &ctx,
                        Err(Error::BadAddress {
                            value: policy.to_string(),
                            expected: match chain {
                                FilterChain::Input => "input policy",
                                FilterChain::Forward => "forward policy",
                                FilterChain::Output => "output policy",
                            },
                            reason: "it is \"drop\" or \"accept\"".into(),
                            help: None,
                        }),
                    )
                }
            };
            ss.apply(&ctx, Op::Firewall { node, change: FirewallChange::ChainPolicy(chain, policy) }).map(|_| ())
        });
    }

    let ss = s.clone();
    engine.register_fn("firewall_rule", move |ctx: NativeCallContext, node: Dynamic, opts: Map| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        let rule = filter_rule(&ctx, &opts)?;
        ss.apply(&ctx, Op::Firewall { node, change: FirewallChange::Rule(rule) }).map(|_| ())
    });

    let ss = s.clone();
    engine.register_fn("forward_accept", move |ctx: NativeCallContext, node: Dynamic, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["iif", "oif", "src", "dst"])?;
        let node = ss.node(&ctx, &node)?;
        let net = |key: &str| -> RhaiResult<Option<ipnet::IpNet>> {
            opt_str(&ctx, &opts, key)?.map(|s| to_rhai(&ctx, parse_cidr(&s).map(|n| n.trunc()))).transpose()
        };
        let rule = ForwardAccept {
            in_link: link_opt(&ctx, &opts, "iif")?,
            out_link: link_opt(&ctx, &opts, "oif")?,
            source: net("src")?,
            destination: net("dst")?,
        };
        // One iptables rule matches one family: iptables-restore would refuse it.
        if let (Some(src), Some(dst)) = (rule.source, rule.destination) {
            if src.addr().is_ipv4() != dst.addr().is_ipv4() {
                let family = |n: ipnet::IpNet| if n.addr().is_ipv4() { "IPv4" } else { "IPv6" };
                to_rhai::<()>(
                    &ctx,
                    Err(Error::BadAddress {
                        value: dst.to_string(),
                        expected: "destination prefix",
                        reason: format!("it is {} and src {src} is {}", family(dst), family(src)),
                        help: Some("a rule is for one family: write one forward_accept() for each".into()),
                    }),
                )?;
            }
        }
        ss.apply(&ctx, Op::Firewall { node, change: FirewallChange::ForwardAccept(rule) }).map(|_| ())
    });

    let ss = s.clone();
    engine.register_fn("nft_ruleset", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<String> {
        let node = ss.node(&ctx, &node)?;
        to_rhai(&ctx, ss.backend().nft_ruleset(&node))
    });
    let ss = s.clone();
    engine.register_fn(
        "iptables_rules",
        move |ctx: NativeCallContext, node: Dynamic, table: &str| -> RhaiResult<Array> {
            let node = ss.node(&ctx, &node)?;
            let Some(table) = IptTable::parse(table) else {
                return Err(super::values::runtime_error(
                    &ctx,
                    format!("iptables_rules: table is \"nat\" or \"filter\", not {table:?}"),
                ));
            };
            let rules = to_rhai(&ctx, ss.backend().iptables_rules(&node, table))?;
            Ok(rules.into_iter().map(Dynamic::from).collect())
        },
    );
}
