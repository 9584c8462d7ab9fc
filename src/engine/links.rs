//! Bindings for the link kinds beyond veth and bridge (dummy, vlan, macvlan, vxlan)
//! and for the attributes every link has (mtu, mac, txqueuelen, alias). Thin: parse
//! the arguments and option maps into an op, hand it to the session.

use std::rc::Rc;

use netlab_runtime::backend::kernel::addr::parse_ip;
use netlab_runtime::model::link::parse_mac;
use netlab_runtime::model::{LinkAttrs, LinkSpec, MacvlanMode, Op, VxlanSpec};
use netlab_runtime::LinkName;
use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::session::Session;
use super::values::{opt_int, opt_str, reject_unknown, runtime_error, to_rhai, RhaiResult};

/// The keys every link-making function takes besides its own.
const ATTR_KEYS: [&str; 4] = ["mtu", "mac", "txqueuelen", "alias"];
/// IANA's VXLAN port (RFC 7348); the kernel's own default, 8472, predates it.
const VXLAN_PORT: u16 = 4789;

fn link_name(ctx: &NativeCallContext, name: &str) -> RhaiResult<LinkName> {
    to_rhai(ctx, LinkName::new(name))
}

fn opt_ip(ctx: &NativeCallContext, opts: &Map, key: &str) -> RhaiResult<Option<std::net::IpAddr>> {
    opt_str(ctx, opts, key)?.map(|s| to_rhai(ctx, parse_ip(&s))).transpose()
}

/// The attributes of an options map (mtu, mac, txqueuelen, alias).
pub(super) fn attrs_of(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<LinkAttrs> {
    attrs(ctx, opts)
}

fn attrs(ctx: &NativeCallContext, opts: &Map) -> RhaiResult<LinkAttrs> {
    let mac = match opt_str(ctx, opts, "mac")? {
        None => None,
        Some(text) => {
            let mac = parse_mac(&text).ok_or_else(|| {
                runtime_error(ctx, format!("mac {text:?} is not a MAC address (six hex pairs: \"02:00:00:00:00:01\")"))
            })?;
            if mac[0] & 1 == 1 {
                return Err(runtime_error(
                    ctx,
                    format!("mac {text} is a multicast address; a link's must be unicast (first byte even)"),
                ));
            }
            Some(mac)
        }
    };
    let alias = opt_str(ctx, opts, "alias")?;
    if alias.as_ref().is_some_and(|a| a.len() > 255) {
        return Err(runtime_error(ctx, "alias is at most 255 bytes".into()));
    }
    Ok(LinkAttrs {
        mtu: opt_int(ctx, opts, "mtu", 68..=65535)?.map(|m| m as u32),
        mac,
        txqueuelen: opt_int(ctx, opts, "txqueuelen", 0..=i64::from(u32::MAX))?.map(|q| q as u32),
        alias,
    })
}

fn keys<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(ATTR_KEYS).collect()
}

pub fn register(engine: &mut Engine, s: &Rc<Session>) {
    // dummy(node, name [, #{mtu, mac, txqueuelen, alias}])
    let ss = s.clone();
    let dummy = move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &ATTR_KEYS)?;
        let node = ss.node(&ctx, &node)?;
        let (name, attrs) = (link_name(&ctx, name)?, attrs(&ctx, &opts)?);
        ss.apply(&ctx, Op::AddLink { node, name, spec: LinkSpec::Dummy, attrs }).map(|_| ())
    };
    let d = dummy.clone();
    engine
        .register_fn("dummy", move |ctx: NativeCallContext, node: Dynamic, name: &str| d(ctx, node, name, Map::new()));
    engine.register_fn("dummy", dummy);

    // vlan(node, parent, id [, name [, #{...}]]): the name defaults to PARENT.ID, as
    // the tutorials write it (eth0.10).
    let ss = s.clone();
    let vlan =
        move |ctx: NativeCallContext, node: Dynamic, parent: &str, id: i64, name: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &ATTR_KEYS)?;
            let node = ss.node(&ctx, &node)?;
            let parent = link_name(&ctx, parent)?;
            if !(0..=4094).contains(&id) {
                return Err(runtime_error(&ctx, format!("a VLAN id is 0 to 4094, not {id}")));
            }
            let name = if name.is_empty() { format!("{parent}.{id}") } else { name.to_string() };
            let (name, attrs) = (link_name(&ctx, &name)?, attrs(&ctx, &opts)?);
            ss.apply(&ctx, Op::AddLink { node, name, spec: LinkSpec::Vlan { parent, id: id as u16 }, attrs })
                .map(|_| ())
        };
    let v = vlan.clone();
    engine.register_fn("vlan", move |ctx: NativeCallContext, node: Dynamic, parent: &str, id: i64| {
        v(ctx, node, parent, id, "", Map::new())
    });
    let v = vlan.clone();
    engine.register_fn("vlan", move |ctx: NativeCallContext, node: Dynamic, parent: &str, id: i64, name: &str| {
        v(ctx, node, parent, id, name, Map::new())
    });
    engine.register_fn("vlan", vlan);

    // macvlan(node, parent, name [, #{mode, ...}]): mode bridge unless said (the
    // kernel's own default, vepa, needs a hairpin switch for two macvlans to talk).
    let ss = s.clone();
    let macvlan = move |ctx: NativeCallContext, node: Dynamic, parent: &str, name: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &keys(&["mode"]))?;
        let node = ss.node(&ctx, &node)?;
        let (parent, name) = (link_name(&ctx, parent)?, link_name(&ctx, name)?);
        let mode = match opt_str(&ctx, &opts, "mode")? {
            None => MacvlanMode::Bridge,
            Some(m) => MacvlanMode::parse(&m).ok_or_else(|| {
                let modes: Vec<&str> = MacvlanMode::ALL.iter().map(|m| m.name()).collect();
                runtime_error(&ctx, format!("mode {m:?} is not a macvlan mode: {}", modes.join(", ")))
            })?,
        };
        let attrs = attrs(&ctx, &opts)?;
        ss.apply(&ctx, Op::AddLink { node, name, spec: LinkSpec::Macvlan { parent, mode }, attrs }).map(|_| ())
    };
    let m = macvlan.clone();
    engine.register_fn("macvlan", move |ctx: NativeCallContext, node: Dynamic, parent: &str, name: &str| {
        m(ctx, node, parent, name, Map::new())
    });
    engine.register_fn("macvlan", macvlan);

    // vxlan(node, name, #{vni, remote | group, local, dev, dstport, ...})
    let ss = s.clone();
    engine.register_fn(
        "vxlan",
        move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &keys(&["vni", "remote", "group", "local", "dev", "dstport"]))?;
            let node = ss.node(&ctx, &node)?;
            let name = link_name(&ctx, name)?;
            let vni = opt_int(&ctx, &opts, "vni", 0..=0xff_ffff)?.ok_or_else(|| {
                runtime_error(&ctx, "vxlan needs its network identifier: #{vni: 42, ...} (0 to 16777215)".into())
            })?;
            let (remote, group, local) =
                (opt_ip(&ctx, &opts, "remote")?, opt_ip(&ctx, &opts, "group")?, opt_ip(&ctx, &opts, "local")?);
            if remote.is_some() && group.is_some() {
                return Err(runtime_error(
                    &ctx,
                    "vxlan takes remote (one other end) or group (multicast), not both".into(),
                ));
            }
            if let Some(r) = remote.filter(|r| r.is_multicast()) {
                return Err(runtime_error(&ctx, format!("remote {r} is a multicast address: use group")));
            }
            if let Some(g) = group.filter(|g| !g.is_multicast()) {
                return Err(runtime_error(&ctx, format!("group {g} is not a multicast address: use remote")));
            }
            let families: Vec<bool> = [remote, group, local].into_iter().flatten().map(|a| a.is_ipv6()).collect();
            if families.windows(2).any(|w| w[0] != w[1]) {
                return Err(runtime_error(
                    &ctx,
                    "vxlan's remote/group and local must be of one family (IPv4 or IPv6)".into(),
                ));
            }
            let dev = opt_str(&ctx, &opts, "dev")?.map(|d| link_name(&ctx, &d)).transpose()?;
            if group.is_some() && dev.is_none() {
                return Err(runtime_error(
                    &ctx,
                    "a multicast group needs the link to send on: #{group: ..., dev: \"eth0\"}".into(),
                ));
            }
            let dstport = opt_int(&ctx, &opts, "dstport", 1..=65535)?.map(|p| p as u16).unwrap_or(VXLAN_PORT);
            let spec = LinkSpec::Vxlan(VxlanSpec { vni: vni as u32, remote, group, local, dev, dstport });
            let attrs = attrs(&ctx, &opts)?;
            ss.apply(&ctx, Op::AddLink { node, name, spec, attrs }).map(|_| ())
        },
    );

    // tuntap(node, name [, #{mode: "tun" | "tap", ...}])
    let ss = s.clone();
    let tuntap = move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &keys(&["mode"]))?;
        let node = ss.node(&ctx, &node)?;
        let name = link_name(&ctx, name)?;
        let tap = match opt_str(&ctx, &opts, "mode")?.as_deref() {
            None | Some("tap") => true,
            Some("tun") => false,
            Some(other) => {
                return Err(runtime_error(&ctx, format!("mode {other:?}: \"tap\" (Ethernet) or \"tun\" (IP)")))
            }
        };
        if !tap && opts.contains_key("mac") {
            return Err(runtime_error(&ctx, "a TUN device carries IP packets: it has no MAC address".into()));
        }
        let attrs = attrs(&ctx, &opts)?;
        ss.apply(&ctx, Op::AddLink { node, name, spec: LinkSpec::Tuntap { tap }, attrs }).map(|_| ())
    };
    let t = tuntap.clone();
    engine
        .register_fn("tuntap", move |ctx: NativeCallContext, node: Dynamic, name: &str| t(ctx, node, name, Map::new()));
    engine.register_fn("tuntap", tuntap);

    // set_link(node, link, #{mtu, mac, txqueuelen, alias})
    let ss = s.clone();
    engine.register_fn(
        "set_link",
        move |ctx: NativeCallContext, node: Dynamic, link: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &ATTR_KEYS)?;
            let node = ss.node(&ctx, &node)?;
            let link = link_name(&ctx, link)?;
            let attrs = attrs(&ctx, &opts)?;
            if attrs.is_empty() {
                return Err(runtime_error(&ctx, format!("set_link needs at least one of: {}", ATTR_KEYS.join(", "))));
            }
            ss.apply(&ctx, Op::SetLink { node, link, attrs }).map(|_| ())
        },
    );
}
