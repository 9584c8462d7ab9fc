//! Bindings for IPv6 beyond addresses: turning it on (`ipv6`), and netlab's router
//! advertisements (`advertise`) for SLAAC. Thin: each is ops the session applies.

use std::rc::Rc;

use netlab_runtime::backend::kernel::addr::parse_prefix;
use netlab_runtime::model::{Op, RouterAdvert};
use netlab_runtime::LinkName;
use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::session::Session;
use super::values::{reject_unknown, runtime_error, to_rhai, type_error, RhaiResult};

pub fn register(engine: &mut Engine, s: &Rc<Session>) {
    // ipv6(node): IPv6 on for every link of the node, those made later too
    // (`sysctl -w net.ipv6.conf.all.disable_ipv6=0`, which sets `default` as well);
    // ipv6(node, "eth0"): for one link.
    let ss = s.clone();
    engine.register_fn("ipv6", move |ctx: NativeCallContext, node: Dynamic| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        let key = "net.ipv6.conf.all.disable_ipv6".to_string();
        ss.apply(&ctx, Op::SetSysctl { node, key, value: "0".into() }).map(|_| ())
    });
    let ss = s.clone();
    engine.register_fn("ipv6", move |ctx: NativeCallContext, node: Dynamic, link: &str| -> RhaiResult<()> {
        let node = ss.node(&ctx, &node)?;
        let link = to_rhai(&ctx, LinkName::new(link))?;
        let key = netlab_runtime::render::ip::sysctl_key(&format!("net/ipv6/conf/{link}/disable_ipv6"));
        ss.apply(&ctx, Op::SetSysctl { node, key, value: "0".into() }).map(|_| ())
    });

    // advertise(router, "eth1", "2001:db8:1::/64" | [prefixes], #{default_route: true})
    // (`default` is a Rhai keyword: a map cannot have it as a key).
    let ss = s.clone();
    let advertise = move |ctx: NativeCallContext,
                          node: Dynamic,
                          link: &str,
                          prefixes: Dynamic,
                          opts: Map|
          -> RhaiResult<()> {
        reject_unknown(&ctx, &opts, &["default_route"])?;
        let node = ss.node(&ctx, &node)?;
        let link = to_rhai(&ctx, LinkName::new(link))?;
        let texts: Vec<Dynamic> = match prefixes.clone().into_typed_array::<Dynamic>() {
            Ok(list) => list,
            Err(_) => vec![prefixes],
        };
        let mut list = Vec::new();
        for t in texts {
            let text =
                t.clone().into_string().map_err(|_| type_error(&ctx, "a prefix such as \"2001:db8:1::/64\"", &t))?;
            let Some(prefix) = to_rhai(&ctx, parse_prefix(&text))? else {
                return Err(runtime_error(&ctx, "advertise() takes prefixes, not \"default\"".into()));
            };
            if !prefix.addr().is_ipv6() || prefix.prefix_len() != 64 {
                return Err(runtime_error(
                        &ctx,
                        format!("{prefix}: SLAAC takes IPv6 /64 prefixes (an interface id is 64 bits), e.g. \"2001:db8:1::/64\""),
                    ));
            }
            list.push(prefix);
        }
        let default_route = match opts.get("default_route") {
            None => true,
            Some(v) => v.as_bool().map_err(|_| type_error(&ctx, "true or false for default_route", v))?,
        };
        let ra = RouterAdvert { prefixes: list, default_route };
        ss.apply(&ctx, Op::Advertise { node, link, ra }).map(|_| ())
    };
    let a = advertise.clone();
    engine.register_fn("advertise", move |ctx: NativeCallContext, node: Dynamic, link: &str, prefixes: Dynamic| {
        a(ctx, node, link, prefixes, Map::new())
    });
    engine.register_fn("advertise", advertise);
}
