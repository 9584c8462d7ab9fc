//! Bindings for WireGuard links: `ip link add wg0 type wireguard` with `wg set`'s
//! keys and peers, `wg show` read back, and `wg genkey` / `wg pubkey`. Thin: parse
//! the option maps into ops, hand them to the session.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use netlab_runtime::backend::kernel::addr::{parse_cidr, parse_ip};
use netlab_runtime::model::{
    parse_wg_key, wg_key_text, wg_lab_key, wg_public_key, LinkSpec, Op, WgConfig, WgKey, WgPeer,
};
use netlab_runtime::{LinkName, NodeName};
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::session::Session;
use super::values::{opt_str, reject_unknown, runtime_error, to_rhai, type_error, RhaiResult};

/// WireGuard's own port (wg-quick's examples, the tutorials'): netlab sets it unless
/// the lab gives one, so a link listens where its peers expect it, on every run
/// (the kernel would pick a random port).
const WG_PORT: u16 = 51820;

const WG_KEYS: [&str; 7] = ["private_key", "listen_port", "peers", "mtu", "mac", "txqueuelen", "alias"];
const PEER_KEYS: [&str; 5] = ["public_key", "peer", "endpoint", "allowed_ips", "persistent_keepalive"];

/// The private keys of the WireGuard links the lab configured, so that a peer
/// named as a link (`peer: [b, "wg0"]`) is that link's public key.
type Keys = Rc<RefCell<HashMap<(NodeName, LinkName), WgKey>>>;

fn link_name(ctx: &NativeCallContext, name: &str) -> RhaiResult<LinkName> {
    to_rhai(ctx, LinkName::new(name))
}

fn key_arg(ctx: &NativeCallContext, key: &str, text: &str) -> RhaiResult<WgKey> {
    parse_wg_key(text).ok_or_else(|| {
        runtime_error(
            ctx,
            format!("{key} {text:?} is not a WireGuard key (44 characters of base64, as wg genkey prints)"),
        )
    })
}

/// A link's private key: the lab's, the one it was given before, or netlab's.
fn own_key(keys: &Keys, node: &NodeName, link: &LinkName) -> WgKey {
    keys.borrow().get(&(node.clone(), link.clone())).copied().unwrap_or_else(|| wg_lab_key(&format!("{node}/{link}")))
}

fn peer(ss: &Session, keys: &Keys, ctx: &NativeCallContext, value: &Dynamic) -> RhaiResult<WgPeer> {
    let opts = value.clone().try_cast::<Map>().ok_or_else(|| type_error(ctx, "a map for each peer", value))?;
    reject_unknown(ctx, &opts, &PEER_KEYS)?;
    let public_key =
        match (opt_str(ctx, &opts, "public_key")?, opts.get("peer")) {
            (Some(text), None) => key_arg(ctx, "public_key", &text)?,
            (None, Some(link)) => {
                let pair =
                    link.clone().into_array().ok().filter(|a| a.len() == 2).ok_or_else(|| {
                        type_error(ctx, "the peer's node and link for peer, as [node, \"wg0\"]", link)
                    })?;
                let node = ss.node(ctx, &pair[0])?;
                let name = pair[1].clone().into_string().map_err(|_| type_error(ctx, "a link name", &pair[1]))?;
                wg_public_key(&own_key(keys, &node, &link_name(ctx, &name)?))
            }
            (Some(_), Some(_)) => return Err(runtime_error(ctx, "a peer has public_key or peer, not both".into())),
            (None, None) => {
                return Err(runtime_error(
                    ctx,
                    "a peer needs its key: #{public_key: \"...\"} or the link it is, #{peer: [node, \"wg0\"]}".into(),
                ))
            }
        };
    let endpoint = match opt_str(ctx, &opts, "endpoint")? {
        None => None,
        Some(text) => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
            runtime_error(
                ctx,
                format!("endpoint {text:?} is not IP:PORT (\"198.51.100.2:51820\", \"[2001:db8::2]:51820\")"),
            )
        })?),
    };
    let allowed_ips = match opts.get("allowed_ips") {
        None => Vec::new(),
        Some(v) => {
            let items: Array = match v.clone().into_array() {
                Ok(items) => items,
                Err(_) => vec![v.clone()],
            };
            items
                .iter()
                .map(|i| {
                    let text = i.clone().into_string().map_err(|_| type_error(ctx, "a CIDR in allowed_ips", i))?;
                    match parse_cidr(&text) {
                        Ok(net) => Ok(net),
                        // A bare address is a host route, as wg takes it.
                        Err(_) => to_rhai(ctx, parse_ip(&text)).map(ipnet::IpNet::from),
                    }
                })
                .collect::<RhaiResult<Vec<_>>>()?
        }
    };
    let keepalive = match opts.get("persistent_keepalive") {
        None => None,
        Some(v) => {
            let n = v.as_int().map_err(|_| type_error(ctx, "an integer for persistent_keepalive", v))?;
            if !(0..=65535).contains(&n) {
                return Err(runtime_error(ctx, format!("persistent_keepalive is 0 to 65535 seconds, not {n}")));
            }
            Some(n as u16)
        }
    };
    Ok(WgPeer { public_key, endpoint, allowed_ips, keepalive })
}

/// `wg set`'s part of an options map.
fn config(
    ss: &Session,
    keys: &Keys,
    ctx: &NativeCallContext,
    node: &NodeName,
    link: &LinkName,
    opts: &Map,
    listen_default: Option<u16>,
) -> RhaiResult<WgConfig> {
    let private_key = match opt_str(ctx, opts, "private_key")? {
        Some(text) => key_arg(ctx, "private_key", &text)?,
        None => own_key(keys, node, link),
    };
    let listen_port = match opts.get("listen_port") {
        None => listen_default,
        Some(v) => {
            let n = v.as_int().map_err(|_| type_error(ctx, "an integer for listen_port", v))?;
            if !(1..=65535).contains(&n) {
                return Err(runtime_error(ctx, format!("listen_port is 1 to 65535, not {n}")));
            }
            Some(n as u16)
        }
    };
    let peers = match opts.get("peers") {
        None => Vec::new(),
        Some(v) => {
            let items = v.clone().into_array().map_err(|_| type_error(ctx, "an array of peer maps for peers", v))?;
            items.iter().map(|p| peer(ss, keys, ctx, p)).collect::<RhaiResult<Vec<_>>>()?
        }
    };
    keys.borrow_mut().insert((node.clone(), link.clone()), private_key);
    Ok(WgConfig { private_key, listen_port, peers })
}

fn show(state: &netlab_runtime::model::WgState) -> Map {
    let mut m = Map::new();
    m.insert("public_key".into(), state.public_key.map(|k| Dynamic::from(wg_key_text(&k))).unwrap_or(Dynamic::UNIT));
    m.insert("listen_port".into(), (state.listen_port as i64).into());
    let peers: Array = state
        .peers
        .iter()
        .map(|p| {
            let mut pm = Map::new();
            pm.insert("public_key".into(), wg_key_text(&p.public_key).into());
            pm.insert("endpoint".into(), p.endpoint.map(|e| Dynamic::from(e.to_string())).unwrap_or(Dynamic::UNIT));
            let ips: Array = p.allowed_ips.iter().map(|n| Dynamic::from(n.to_string())).collect();
            pm.insert("allowed_ips".into(), ips.into());
            pm.insert("persistent_keepalive".into(), (p.keepalive as i64).into());
            pm.insert("handshake".into(), p.handshake_age.is_some().into());
            pm.insert(
                "handshake_age".into(),
                p.handshake_age.map(|a| Dynamic::from(a as i64)).unwrap_or(Dynamic::UNIT),
            );
            pm.insert("rx_bytes".into(), (p.rx_bytes as i64).into());
            pm.insert("tx_bytes".into(), (p.tx_bytes as i64).into());
            Dynamic::from_map(pm)
        })
        .collect();
    m.insert("peers".into(), peers.into());
    m
}

pub fn register(engine: &mut Engine, s: &Rc<Session>) {
    let keys: Keys = Rc::default();

    // wireguard(node, "wg0", #{private_key, listen_port, peers: [...], mtu, ...})
    let (ss, k) = (s.clone(), keys.clone());
    let wireguard = move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &WG_KEYS)?;
        let node = ss.node(&ctx, &node)?;
        let name = link_name(&ctx, name)?;
        let config = config(&ss, &k, &ctx, &node, &name, &opts, Some(WG_PORT))?;
        let mut attr_opts = opts.clone();
        for key in ["private_key", "listen_port", "peers"] {
            attr_opts.remove(key);
        }
        if attr_opts.contains_key("mac") {
            return Err(runtime_error(&ctx, "a WireGuard link carries IP packets: it has no MAC address".into()));
        }
        let attrs = super::links::attrs_of(&ctx, &attr_opts)?;
        ss.apply(&ctx, Op::AddLink { node: node.clone(), name: name.clone(), spec: LinkSpec::Wireguard, attrs })?;
        ss.apply(&ctx, Op::SetWireguard { node, link: name, config }).map(|_| ())
    };
    let w = wireguard.clone();
    engine.register_fn("wireguard", move |ctx: NativeCallContext, node: Dynamic, name: &str| {
        w(ctx, node, name, Map::new())
    });
    engine.register_fn("wireguard", wireguard);

    // set_wireguard(node, "wg0", #{private_key, listen_port, peers}): `wg set` again.
    let (ss, k) = (s.clone(), keys.clone());
    engine.register_fn(
        "set_wireguard",
        move |ctx: NativeCallContext, node: Dynamic, name: &str, opts: Map| -> RhaiResult<()> {
            reject_unknown(&ctx, &opts, &["private_key", "listen_port", "peers"])?;
            if opts.is_empty() {
                return Err(runtime_error(
                    &ctx,
                    "set_wireguard needs at least one of: private_key, listen_port, peers".into(),
                ));
            }
            let node = ss.node(&ctx, &node)?;
            let link = link_name(&ctx, name)?;
            let config = config(&ss, &k, &ctx, &node, &link, &opts, None)?;
            ss.apply(&ctx, Op::SetWireguard { node, link, config }).map(|_| ())
        },
    );

    // wg_show(node, "wg0"): `wg show wg0`
    let ss = s.clone();
    engine.register_fn("wg_show", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<Map> {
        let node = ss.node(&ctx, &node)?;
        let link = link_name(&ctx, name)?;
        to_rhai(&ctx, ss.backend().wireguard(&node, &link)).map(|s| show(&s))
    });

    // wg_genkey("seed"), wg_pubkey(private)
    engine.register_fn("wg_genkey", |seed: &str| -> String { wg_key_text(&wg_lab_key(seed)) });
    engine.register_fn("wg_pubkey", |ctx: NativeCallContext, private: &str| -> RhaiResult<String> {
        Ok(wg_key_text(&wg_public_key(&key_arg(&ctx, "the private key", private)?)))
    });
    // The public key netlab gives (or the lab gave) a WireGuard link.
    let k = keys;
    let ss = s.clone();
    engine.register_fn("wg_key", move |ctx: NativeCallContext, node: Dynamic, name: &str| -> RhaiResult<String> {
        let node = ss.node(&ctx, &node)?;
        let link = link_name(&ctx, name)?;
        Ok(wg_key_text(&wg_public_key(&own_key(&k, &node, &link))))
    });
}
