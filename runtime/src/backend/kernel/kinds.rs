//! Link kinds beyond veth and bridge (dummy, vlan, macvlan, vxlan), and the
//! attributes any link has (mtu, MAC address, txqueuelen, alias): one request each,
//! as `ip link add NAME [link PARENT] type KIND ... mtu M address MAC` sends.

use rtnetlink::packet_route::link::{InfoData, InfoMacVlan, InfoVlan, InfoVxlan, MacVlanMode as NlMacvlanMode};
use std::net::IpAddr;

use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::{LinkDummy, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVlan, LinkVxlan};

use crate::backend::kernel::link::{next_ifindex, stable_mac};

use crate::backend::kernel::node::Node;
use crate::error::{nl_to_io, Error, Result};
use crate::model::{LinkAttrs, LinkDetails, LinkKind, LinkSpec, MacvlanMode};
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
            if attrs.mac.is_none() && !matches!(spec, LinkSpec::Vlan { .. }) {
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

fn kind_op(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Dummy => "creating dummy link",
        LinkKind::Vlan => "creating VLAN link",
        LinkKind::Macvlan => "creating macvlan link",
        LinkKind::Vxlan => "creating VXLAN link",
        _ => "creating link",
    }
}
