//! Link kinds beyond veth and bridge (dummy, vlan, macvlan, vxlan), and the
//! attributes any link has (mtu, MAC address, txqueuelen, alias): one request each,
//! as `ip link add NAME [link PARENT] type KIND ... mtu M address MAC` sends.

use rtnetlink::packet_route::link::{
    BondMode as NlBondMode, InfoBond, InfoData, InfoMacVlan, InfoVlan, InfoVxlan, MacVlanMode as NlMacvlanMode,
};
use std::net::IpAddr;

use rtnetlink::packet_core::Nla;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::{LinkBond, LinkDummy, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVlan, LinkVxlan, LinkWireguard};

use crate::backend::kernel::link::{next_ifindex, stable_mac};

use crate::backend::kernel::node::Node;
use crate::error::{nl_to_io, Error, Result};
use crate::model::{BondMode, LinkAttrs, LinkDetails, LinkKind, LinkSpec, MacvlanMode};
use crate::names::LinkName;

fn with_attrs<T>(mut msg: LinkMessageBuilder<T>, attrs: &LinkAttrs) -> LinkMessageBuilder<T> {
    if let Some(mtu) = attrs.mtu {
        msg = msg.mtu(mtu);
    }
    if let Some(mac) = attrs.mac {
        msg = msg.address(mac.to_vec());
    }
    if let Some(q) = attrs.txqueuelen {
        msg = msg.txqueuelen(q);
    }
    if let Some(alias) = &attrs.alias {
        msg = msg.alias(alias.clone());
    }
    msg
}

fn macvlan_mode(mode: MacvlanMode) -> NlMacvlanMode {
    match mode {
        MacvlanMode::Private => NlMacvlanMode::Private,
        MacvlanMode::Vepa => NlMacvlanMode::Vepa,
        MacvlanMode::Bridge => NlMacvlanMode::Bridge,
        MacvlanMode::Passthru => NlMacvlanMode::Passthrough,
        MacvlanMode::Source => NlMacvlanMode::Source,
    }
}

impl Node {
    /// `ip link add NAME [link PARENT] type KIND ...` with the attributes given.
    pub async fn create_link(&self, name: &LinkName, spec: &LinkSpec, attrs: &LinkAttrs) -> Result<()> {
        if let LinkSpec::Tuntap { .. } = spec {
            let why = std::io::Error::other("a TUN/TAP device is made through /dev/net/tun (Lab::create_tuntap)");
            return Err(Error::io(format!("creating {name}"), why));
        }
        let parent = match spec.parent() {
            Some(p) => Some(self.link_index(p).await?.0),
            None => None,
        };
        loop {
            // Lab-wide distinct ifindexes, and a MAC address of netlab's own unless the
            // lab gives one (a vlan keeps its parent's, as the kernel does), so that
            // listings are the same on every machine (see create_veth_with).
            let index = next_ifindex(1);
            let mut attrs = attrs.clone();
            // A WireGuard link carries IP, not Ethernet: it has no MAC address.
            if attrs.mac.is_none() && !matches!(spec, LinkSpec::Vlan { .. } | LinkSpec::Wireguard) {
                attrs.mac = Some(stable_mac(self.name.as_str(), name.as_str()));
            }
            let msg = Self::link_message(name, spec, parent, &attrs, index);
            match self.handle()?.link().add(msg).execute().await.map_err(nl_to_io) {
                Ok(()) => {
                    self.known_links.borrow_mut().insert(name.to_string(), (index, spec.kind()));
                    return Ok(());
                }
                Err(io) if io.raw_os_error() == Some(libc::EBUSY) => continue, // that ifindex is taken
                Err(io) if io.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    return Err(Error::missing_feature(spec.feature(), self.name.as_str(), name.as_str()))
                }
                Err(io) => return Err(Error::kernel(kind_op(spec.kind()), self.name.as_str(), name.as_str(), io)),
            }
        }
    }

    /// The request for `spec`, at ifindex `index`.
    fn link_message(
        name: &LinkName,
        spec: &LinkSpec,
        parent: Option<u32>,
        attrs: &LinkAttrs,
        index: u32,
    ) -> LinkMessage {
        let name = name.as_str();
        let parent = parent.unwrap_or_default();
        match spec {
            LinkSpec::Dummy => with_attrs(LinkDummy::new(name), attrs).index(index).build(),
            LinkSpec::Vlan { id, .. } => with_attrs(LinkVlan::new(name, parent, *id), attrs).index(index).build(),
            LinkSpec::Macvlan { mode, .. } => {
                with_attrs(LinkMacVlan::new(name, parent, macvlan_mode(*mode)), attrs).index(index).build()
            }
            LinkSpec::Vxlan(v) => {
                let mut msg = LinkVxlan::new(name, v.vni).port(v.dstport);
                msg = match v.remote {
                    Some(IpAddr::V4(a)) => msg.remote(a),
                    Some(IpAddr::V6(a)) => msg.remote6(a),
                    None => msg,
                };
                msg = match v.group {
                    Some(IpAddr::V4(a)) => msg.group(a),
                    Some(IpAddr::V6(a)) => msg.group6(a),
                    None => msg,
                };
                msg = match v.local {
                    Some(IpAddr::V4(a)) => msg.local(a),
                    Some(IpAddr::V6(a)) => msg.local6(a),
                    None => msg,
                };
                if v.dev.is_some() {
                    msg = msg.dev(parent);
                }
                with_attrs(msg, attrs).index(index).build()
            }
            LinkSpec::Bond(b) => with_attrs(LinkBond::new(name), attrs)
                .mode(NlBondMode::from(b.mode.number()))
                .miimon(b.miimon)
                .index(index)
                .build(),
            LinkSpec::Wireguard => with_attrs(LinkWireguard::new(name), attrs).index(index).build(),
            // Made through /dev/net/tun (Lab::create_tuntap); create_link refuses it.
            LinkSpec::Tuntap { .. } => LinkMessage::default(),
        }
    }

    /// `ip link set NAME mtu M address MAC txqueuelen Q alias A`.
    pub async fn set_link_attrs(&self, name: &LinkName, attrs: &LinkAttrs) -> Result<()> {
        let msg = with_attrs(LinkUnspec::new_with_name(name.as_str()), attrs).build();
        match self.handle()?.link().set(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.link_error("changing", name, e).await),
        }
    }
}

/// The kind-specific part of a link's IFLA_INFO_DATA, as `ip -d link` shows it.
pub(super) fn details(data: &InfoData) -> Option<LinkDetails> {
    match data {
        InfoData::Vlan(infos) => infos.iter().find_map(|i| match i {
            InfoVlan::Id(id) => Some(LinkDetails::Vlan { id: *id }),
            _ => None,
        }),
        InfoData::MacVlan(infos) => infos.iter().find_map(|i| match i {
            InfoMacVlan::Mode(m) => Some(LinkDetails::Macvlan {
                mode: match m {
                    NlMacvlanMode::Private => MacvlanMode::Private,
                    NlMacvlanMode::Bridge => MacvlanMode::Bridge,
                    NlMacvlanMode::Passthrough => MacvlanMode::Passthru,
                    NlMacvlanMode::Source => MacvlanMode::Source,
                    _ => MacvlanMode::Vepa,
                },
            }),
            _ => None,
        }),
        // IFLA_TUN_TYPE (3): IFF_TUN (1) or IFF_TAP (2).
        InfoData::Tun(infos) => infos.iter().find_map(|i| match i {
            rtnetlink::packet_route::link::InfoTun::Other(nla) if nla.kind() == 3 => {
                let mut value = [0u8; 1];
                nla.emit_value(&mut value);
                Some(LinkDetails::Tun { tap: value[0] == 2 })
            }
            _ => None,
        }),
        InfoData::Bridge(infos) => Some(LinkDetails::Bridge(super::bridge::bridge_conf(infos))),
        InfoData::Bond(infos) => {
            let (mut mode, mut miimon, mut active) = (BondMode::BalanceRr, 0, None);
            for info in infos {
                match info {
                    InfoBond::Mode(m) => mode = BondMode::from_number(u8::from(*m)).unwrap_or(mode),
                    InfoBond::MiiMon(ms) => miimon = *ms,
                    InfoBond::ActivePort(index) => active = Some(*index),
                    _ => {}
                }
            }
            Some(LinkDetails::Bond { mode, miimon, active })
        }
        InfoData::Vxlan(infos) => {
            let (mut vni, mut dstport, mut remote, mut group) = (None, 0, None, None);
            for info in infos {
                match info {
                    InfoVxlan::Id(id) => vni = Some(*id),
                    InfoVxlan::Port(p) => dstport = *p,
                    InfoVxlan::Group(a) => {
                        let ip = std::net::IpAddr::V4(*a);
                        if ip.is_multicast() {
                            group = Some(ip)
                        } else {
                            remote = Some(ip)
                        }
                    }
                    InfoVxlan::Group6(a) => {
                        let ip = std::net::IpAddr::V6(*a);
                        if ip.is_multicast() {
                            group = Some(ip)
                        } else {
                            remote = Some(ip)
                        }
                    }
                    _ => {}
                }
            }
            Some(LinkDetails::Vxlan { vni: vni?, dstport, remote, group })
        }
        _ => None,
    }
}

impl super::Lab {
    /// `ip tuntap add dev NAME mode tun|tap`: TUNSETIFF on /dev/net/tun from inside the
    /// node, made persistent (TUNSETPERSIST) so it stays when the descriptor closes;
    /// the lab-wide ifindex first (TUNSETIFINDEX), the attributes after, over netlink.
    pub(super) fn create_tuntap(&self, node: &Node, name: &LinkName, tap: bool, attrs: &LinkAttrs) -> Result<()> {
        const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
        const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
        const TUNSETIFINDEX: libc::c_ulong = 0x4004_54da;
        const IFF_TUN: libc::c_short = 0x0001;
        const IFF_TAP: libc::c_short = 0x0002;
        const IFF_NO_PI: libc::c_short = 0x1000;
        let make = |index: u32| -> std::io::Result<()> {
            use std::os::fd::AsRawFd;
            let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
            let mut req = [0u8; 40]; // struct ifreq: the name, then ifr_flags
            req[..name.as_str().len()].copy_from_slice(name.as_str().as_bytes());
            let flags = if tap { IFF_TAP } else { IFF_TUN } | IFF_NO_PI;
            req[16..18].copy_from_slice(&flags.to_ne_bytes());
            let check = |r: libc::c_int| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
            // SAFETY: ioctls of the TUN driver on a descriptor we own, with the
            // argument types they take (an unsigned int, a struct ifreq, an int).
            unsafe {
                check(libc::ioctl(dev.as_raw_fd(), TUNSETIFINDEX as _, &index))?;
                check(libc::ioctl(dev.as_raw_fd(), TUNSETIFF as _, req.as_mut_ptr()))?;
                check(libc::ioctl(dev.as_raw_fd(), TUNSETPERSIST as _, 1 as libc::c_int))?;
            }
            Ok(())
        };
        // EBUSY is an ifindex some program's link took (or a device of that name in
        // use): a few other indexes, then the kernel's answer stands.
        let mut tries = 0;
        let made = loop {
            let index = next_ifindex(1);
            tries += 1;
            match node.enter(&self.home, || make(index))? {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 16 => continue,
                other => break other.map(|()| index),
            }
        };
        let index = match made {
            Ok(index) => index,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENODEV)) => {
                return Err(Error::missing_feature(crate::model::Feature::Tun, node.name.as_str(), name.as_str()))
            }
            Err(e) => return Err(Error::kernel("creating TUN/TAP device", node.name.as_str(), name.as_str(), e)),
        };
        node.known_links.borrow_mut().insert(name.to_string(), (index, LinkKind::Tun));
        let mut attrs = attrs.clone();
        if tap && attrs.mac.is_none() {
            attrs.mac = Some(stable_mac(node.name.as_str(), name.as_str()));
        }
        if attrs.is_empty() {
            return Ok(());
        }
        let limit = self.netlink_limit();
        self.rt.block_on(async {
            tokio::time::timeout(limit, node.set_link_attrs(name, &attrs)).await.unwrap_or_else(|_| {
                Err(Error::io("setting the attributes of a TUN/TAP device", std::io::ErrorKind::TimedOut.into()))
            })
        })
    }
}

fn kind_op(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Dummy => "creating dummy link",
        LinkKind::Vlan => "creating VLAN link",
        LinkKind::Macvlan => "creating macvlan link",
        LinkKind::Vxlan => "creating VXLAN link",
        LinkKind::Bond => "creating bond",
        LinkKind::Wireguard => "creating WireGuard link",
        _ => "creating link",
    }
}
