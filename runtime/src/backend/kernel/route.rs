//! Routes: `ip route add PREFIX via GW | dev LINK`, delete, and listing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHop, RouteNextHopFlags, RouteProtocol, RouteScope,
    RouteType,
};
use rtnetlink::RouteMessageBuilder;

use crate::backend::kernel::node::Node;
use crate::error::{nl_to_io, Error, Result};

pub use crate::model::state::{HopState, NextHop, PathHop, RouteKind, RouteOpts, RouteState, Scope, MAIN_TABLE};

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

impl Node {
    async fn route_message(&self, destination: Option<IpNet>, hop: &NextHop, opts: &RouteOpts) -> Result<RouteMessage> {
        let v6 = match (destination, hop) {
            (Some(net), _) => net.addr().is_ipv6(),
            (None, hop) => hop.family_v6().or(opts.src.map(|s| s.is_ipv6())).unwrap_or(false),
        };
        let (dst, len) = match destination {
            Some(net) => (net.addr(), net.prefix_len()),
            None if v6 => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            None => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        };
        let mismatch = |what: String| Error::BadAddress {
            value: what,
            expected: "route",
            reason: "the destination, the gateway and the source are of different IP versions".into(),
            help: None,
        };
        // `ip route add` marks its routes proto boot; so does netlab, so that `ip
        // route` prints them as the tutorial's reader sees them.
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst, len)
            .map_err(|e| mismatch(e.to_string()))?
            .protocol(RouteProtocol::Boot)
            .table_id(opts.table());
        if let Some(metric) = opts.metric {
            builder = builder.priority(metric);
        }
        if let Some(src) = opts.src {
            if src.is_ipv6() != v6 {
                return Err(mismatch(format!("{dst}/{len} src {src}")));
            }
            builder = builder.pref_source(src).map_err(|e| mismatch(e.to_string()))?;
        }
        match hop {
            NextHop::Gateway(gw) => {
                if gw.is_ipv6() != v6 {
                    return Err(mismatch(format!("{dst}/{len} via {gw}")));
                }
                builder = builder.gateway(*gw).map_err(|e| mismatch(e.to_string()))?;
                if let Some(dev) = &opts.dev {
                    builder = builder.output_interface(self.link_index(dev).await?.0);
                }
                if opts.onlink {
                    builder = builder.onlink();
                }
            }
            NextHop::Device(dev) => {
                let (index, _) = self.link_index(dev).await?;
                builder = builder.output_interface(index).scope(RouteScope::Link);
            }
            NextHop::Blackhole => builder = builder.kind(RouteType::BlackHole),
            NextHop::Unreachable => builder = builder.kind(RouteType::Unreachable),
            NextHop::Prohibit => builder = builder.kind(RouteType::Prohibit),
            NextHop::Multipath(paths) => {
                let mut hops = Vec::with_capacity(paths.len());
                for path in paths {
                    let mut hop = RouteNextHop::default();
                    // rtnh_hops is the weight minus one, as `ip route` sends it.
                    hop.hops = u8::try_from(path.weight.clamp(1, 256) - 1).unwrap_or(u8::MAX);
                    if let Some(dev) = &path.dev {
                        hop.interface_index = self.link_index(dev).await?.0;
                    }
                    if let Some(gw) = path.gateway {
                        if gw.is_ipv6() != v6 {
                            return Err(mismatch(format!("{dst}/{len} nexthop via {gw}")));
                        }
                        hop.attributes.push(RouteAttribute::Gateway(match gw {
                            IpAddr::V4(a) => RouteAddress::Inet(a),
                            IpAddr::V6(a) => RouteAddress::Inet6(a),
                        }));
                    }
                    hops.push(hop);
                }
                builder = builder.multipath(hops);
            }
        }
        Ok(builder.build())
    }

    /// `ip route add [TYPE] DEST via GW | dev LINK [metric M] [table T] ...`; DEST None = default.
    pub async fn add_route(&self, destination: Option<IpNet>, hop: &NextHop, opts: &RouteOpts) -> Result<()> {
        let msg = self.route_message(destination, hop, opts).await?;
        let what = describe(destination, hop);
        self.handle()?.route().add(msg).execute().await.map_err(|e| {
            let io = nl_to_io(e);
            let mut err = Error::kernel("adding route", self.name.as_str(), what, io);
            if let Error::Kernel { source, help, .. } = &mut err {
                if source.raw_os_error() == Some(libc::ENETUNREACH) {
                    let which = if matches!(hop, NextHop::Multipath(_)) { "a path's gateway" } else { "the gateway" };
                    *help = Some(format!(
                        "{which} is not on any subnet of {}: give its link an address in that subnet first",
                        self.name
                    ));
                }
                if source.raw_os_error() == Some(libc::EINVAL) && opts.src.is_some() {
                    *help = Some(format!("src must be one of {}'s own addresses", self.name));
                }
            }
            err
        })
    }

    /// `ip route del DEST`.
    pub async fn delete_route(&self, destination: Option<IpNet>, table: u32) -> Result<()> {
        let routes = self.route_messages().await?;
        let target = routes.into_iter().find(|m| {
            let state = route_state(m);
            state.table == table && state.destination == destination
        });
        let what = destination.map(|d| d.to_string()).unwrap_or_else(|| "default".into());
        let Some(msg) = target else {
            return Err(Error::kernel(
                "deleting route",
                self.name.as_str(),
                what,
                std::io::Error::from_raw_os_error(libc::ESRCH),
            ));
        };
        self.handle()?
            .route()
            .del(msg)
            .execute()
            .await
            .map_err(|e| Error::kernel("deleting route", self.name.as_str(), what, nl_to_io(e)))
    }

    pub(crate) async fn route_messages(&self) -> Result<Vec<RouteMessage>> {
        let mut all = Vec::new();
        for proto in [RouteMessageBuilder::<Ipv4Addr>::new().build(), RouteMessageBuilder::<Ipv6Addr>::new().build()] {
            let msgs: Vec<RouteMessage> = self
                .handle()?
                .route()
                .get(proto)
                .execute()
                .try_collect()
                .await
                .map_err(|e| Error::kernel("listing routes", self.name.as_str(), "", nl_to_io(e)))?;
            all.extend(msgs);
        }
        Ok(all)
    }

    /// The main table's routes (`ip route` and `ip -6 route`).
    pub async fn routes(&self) -> Result<Vec<RouteState>> {
        self.routes_in(MAIN_TABLE).await
    }

    /// One table's routes (`ip route show table T`).
    pub async fn routes_in(&self, table: u32) -> Result<Vec<RouteState>> {
        Ok(self.route_messages().await?.iter().map(route_state).filter(|r| r.table == table).collect())
    }
}

pub(crate) fn describe(destination: Option<IpNet>, hop: &NextHop) -> String {
    let dst = destination.map(|d| d.to_string()).unwrap_or_else(|| "default".into());
    match hop {
        NextHop::Gateway(gw) => format!("{dst} via {gw}"),
        NextHop::Device(dev) => format!("{dst} dev {dev}"),
        NextHop::Multipath(paths) => {
            let mut s = dst;
            for p in paths {
                s += " nexthop";
                if let Some(gw) = p.gateway {
                    s += &format!(" via {gw}");
                }
                if let Some(dev) = &p.dev {
                    s += &format!(" dev {dev}");
                }
            }
            s
        }
        typed => format!("{} {dst}", typed.type_word().unwrap_or_default()),
    }
}

pub(crate) fn route_state(msg: &RouteMessage) -> RouteState {
    let mut state = RouteState {
        destination: None,
        gateway: None,
        device_index: None,
        scope: scope(msg.header.scope),
        table: u32::from(msg.header.table),
        kind: match msg.header.kind {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unreachable => RouteKind::Unreachable,
            RouteType::Prohibit => RouteKind::Prohibit,
            RouteType::Local => RouteKind::Local,
            RouteType::Broadcast => RouteKind::Broadcast,
            _ => RouteKind::Other,
        },
        metric: None,
        proto: match msg.header.protocol {
            RouteProtocol::Kernel => "kernel".into(),
            RouteProtocol::Boot => "boot".into(),
            RouteProtocol::Static => "static".into(),
            RouteProtocol::Ra => "ra".into(),
            RouteProtocol::Dhcp => "dhcp".into(),
            other => u8::from(other).to_string(),
        },
        src: None,
        linkdown: msg.header.flags.contains(RouteFlags::Linkdown),
        onlink: msg.header.flags.contains(RouteFlags::Onlink),
        nexthops: Vec::new(),
    };
    let mut dst = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => state.gateway = route_ip(a),
            RouteAttribute::Oif(i) => state.device_index = Some(*i),
            RouteAttribute::Table(t) => state.table = *t,
            RouteAttribute::Priority(p) => state.metric = Some(*p),
            RouteAttribute::PrefSource(a) => state.src = route_ip(a),
            RouteAttribute::MultiPath(hops) => {
                state.nexthops = hops
                    .iter()
                    .map(|h| HopState {
                        gateway: h.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => route_ip(g),
                            _ => None,
                        }),
                        device_index: (h.interface_index != 0).then_some(h.interface_index),
                        weight: u16::from(h.hops) + 1,
                        dead: h.flags.contains(RouteNextHopFlags::Dead),
                        linkdown: h.flags.contains(RouteNextHopFlags::Linkdown),
                    })
                    .collect()
            }
            _ => {}
        }
    }
    state.destination = dst.and_then(|d| IpNet::new(d, msg.header.destination_prefix_length).ok());
    if msg.header.destination_prefix_length > 0 && state.destination.is_none() {
        state.destination = None;
    }
    state
}

fn scope(scope: RouteScope) -> Scope {
    match scope {
        RouteScope::Universe => Scope::Universe,
        RouteScope::Site => Scope::Site,
        RouteScope::Link => Scope::Link,
        RouteScope::Host => Scope::Host,
        _ => Scope::Nowhere,
    }
}
