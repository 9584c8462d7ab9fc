//! Bindings for NAT and the forwarding filter (nftables inside the node).

use std::rc::Rc;

use netlab_runtime::backend::kernel::addr::{parse_cidr, parse_prefix};
use netlab_runtime::model::firewall::{
    rule_link, FirewallChange, ForwardAccept, Masquerade, Policy, PortForward, Proto,
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

pub fn register(engine: &mut Engine, s: &Rc<Session>) {
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

    let ss = s.clone();
    engine.register_fn(
        "forward_policy",
        move |ctx: NativeCallContext, node: Dynamic, policy: &str| -> RhaiResult<()> {
            let node = ss.node(&ctx, &node)?;
            let policy = match policy.to_ascii_lowercase().as_str() {
                "drop" => Policy::Drop,
                "accept" => Policy::Accept,
                _ => {
                    return to_rhai(
                        &ctx,
                        Err(Error::BadAddress {
                            value: policy.to_string(),
                            expected: "forward policy",
                            reason: "it is \"drop\" or \"accept\"".into(),
                            help: None,
                        }),
                    )
                }
            };
            ss.apply(&ctx, Op::Firewall { node, change: FirewallChange::ForwardPolicy(policy) }).map(|_| ())
        },
    );

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
