//! Links: veth pairs, bridges, up/down, bridge ports, and reading link state back.

use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, BridgePortState, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::backend::kernel::node::Node;
use crate::error::{known_names_help, nl_to_io, Error, Result};
use crate::names::LinkName;

pub use crate::model::state::{LinkKind, LinkState, OperState, PortState};

fn oper_state(state: &State) -> OperState {
    match state {
        State::Up => OperState::Up,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::NotPresent => OperState::NotPresent,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        _ => OperState::Unknown,
    }
}

fn port_state(state: &BridgePortState) -> Option<PortState> {
    Some(match state {
        BridgePortState::Disabled => PortState::Disabled,
        BridgePortState::Listening => PortState::Listening,
        BridgePortState::Learning => PortState::Learning,
        BridgePortState::Forwarding => PortState::Forwarding,
        BridgePortState::Blocking => PortState::Blocking,
        _ => return None,
    })
}

/// A locally administered unicast MAC derived from the node's and the link's
/// names (FNV-1a), so a lab's bridges have the same address on every run.
pub fn stable_mac(node: &str, link: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0]).chain(link.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

pub fn format_mac(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl From<&LinkMessage> for LinkState {
    fn from(msg: &LinkMessage) -> Self {
        let mut state = LinkState {
            index: msg.header.index,
            name: String::new(),
            kind: LinkKind::Other,
            mac: String::new(),
            admin_up: msg.header.flags.contains(LinkFlags::Up),
            oper: OperState::Unknown,
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
            mtu: 0,
            master: None,
            peer_index: None,
            port_state: None,
            ipv6: false,
            txqueuelen: 0,
            alias: None,
            details: None,
            port_opts: None,
        };
        if msg.header.flags.contains(LinkFlags::Loopback) {
            state.kind = LinkKind::Loopback;
        }
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => state.name = n.clone(),
                LinkAttribute::Address(a) => state.mac = format_mac(a),
                LinkAttribute::OperState(s) => state.oper = oper_state(s),
                LinkAttribute::Carrier(c) => state.carrier = *c != 0,
                LinkAttribute::Mtu(m) => state.mtu = *m,
                LinkAttribute::Controller(m) => state.master = Some(*m),
                LinkAttribute::Link(p) => state.peer_index = Some(*p),
                LinkAttribute::TxQueueLen(q) => state.txqueuelen = *q,
                LinkAttribute::IfAlias(a) => state.alias = Some(a.clone()).filter(|a| !a.is_empty()),
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        if let AfSpecUnspec::Inet6(inet6) = spec {
                            for a in inet6 {
                                if let AfSpecInet6::DevConf(conf) = a {
                                    state.ipv6 = conf.disable_ipv6 == 0;
                                }
                            }
                        }
                    }
                }
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => state.kind = LinkKind::from_kernel(&kind.to_string()),
                            LinkInfo::Data(data) => state.details = super::kinds::details(data),
                            LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                                let mut opts = crate::model::BridgePortOpts::default();
                                for p in port {
                                    match p {
                                        InfoBridgePort::State(s) => state.port_state = port_state(s),
                                        InfoBridgePort::Learning(v) => opts.learning = Some(*v),
                                        InfoBridgePort::UnicastFlood(v) => opts.flood = Some(*v),
                                        InfoBridgePort::Isolated(v) => opts.isolated = Some(*v),
                                        _ => {}
                                    }
                                }
                                state.port_opts = Some(opts);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // IFLA_LINK is a veth's peer, a vlan's or macvlan's parent; for others it
        // says nothing netlab reports.
        if !matches!(state.kind, LinkKind::Veth | LinkKind::Vlan | LinkKind::Macvlan) {
            state.peer_index = None;
        }
        state
    }
}

impl Node {
    /// All links of the node (`ip -d link show`).
    pub async fn links(&self) -> Result<Vec<LinkState>> {
        Ok(self.link_messages().await?.iter().map(LinkState::from).collect())
    }

    /// The kernel's link dump of the node, as it comes.
    pub async fn link_messages(&self) -> Result<Vec<LinkMessage>> {
        self.handle()?
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::kernel("listing links", self.name.as_str(), "", nl_to_io(e)))
    }

    /// A link's index and kind by name: from what this node has looked up before
    /// (the lab forgets it whenever a link may have gone or been renamed: see
    /// Lab::forget_link_indexes), else from the kernel. Saves a round trip per
    /// address, route or port added to a link netlab has seen.
    pub async fn link_index(&self, name: &LinkName) -> Result<(u32, LinkKind)> {
        if let Some(found) = self.known_links.borrow().get(name.as_str()) {
            return Ok(*found);
        }
        let link = self.link(name).await?;
        Ok((link.index, link.kind))
    }

    /// Forgets every link index this node looked up.
    pub fn forget_link_indexes(&self) {
        self.known_links.borrow_mut().clear();
    }

    /// One link by name, or NoSuchLink listing the node's links.
    pub async fn link(&self, name: &LinkName) -> Result<LinkState> {
        let found = self.handle()?.link().get().match_name(name.as_str()).execute().try_next().await;
        match found {
            Ok(Some(msg)) => {
                let state = LinkState::from(&msg);
                self.known_links.borrow_mut().insert(state.name.clone(), (state.index, state.kind));
                Ok(state)
            }
            Ok(None) => Err(self.no_such_link(name).await),
            Err(e) => {
                let io = nl_to_io(e);
                if io.raw_os_error() == Some(libc::ENODEV) {
                    Err(self.no_such_link(name).await)
                } else {
                    Err(Error::kernel("looking up", self.name.as_str(), name.as_str(), io))
                }
            }
        }
    }

    pub(crate) async fn no_such_link(&self, name: &LinkName) -> Error {
        let known: Vec<String> =
            self.links().await.map(|l| l.into_iter().map(|l| l.name).collect()).unwrap_or_default();
        Error::NoSuchLink {
            node: self.name.to_string(),
            link: name.to_string(),
            help: known_names_help(&format!("links in {}", self.name), &known),
        }
    }

    /// Maps a netlink failure on an existing-link operation to NoSuchLink or a kernel error.
    pub(super) async fn link_error(&self, op: &'static str, name: &LinkName, e: rtnetlink::Error) -> Error {
        let io = nl_to_io(e);
        if io.raw_os_error() == Some(libc::ENODEV) {
            self.no_such_link(name).await
        } else {
            Error::kernel(op, self.name.as_str(), name.as_str(), io)
        }
    }

    /// `ip link add NAME type veth peer name PEER netns PEER_NODE`: the peer is created
    /// directly inside its namespace in the same request.
    pub async fn create_veth(&self, name: &LinkName, peer_node: &Node, peer: &LinkName) -> Result<()> {
        self.create_veth_with(name, peer_node, peer, None, false).await
    }

    /// create_veth, with this end's master (a bridge's index) and up state set in the
    /// same request, as `ip link add NAME master BR up type veth peer ...` does.
    pub async fn create_veth_with(
        &self,
        name: &LinkName,
        peer_node: &Node,
        peer: &LinkName,
        master: Option<u32>,
        up: bool,
    ) -> Result<()> {
        loop {
            // Lab-wide distinct ifindexes, as on a real host (eth0@if1005): with the
            // kernel's default every namespace's first link is 2, and a veth whose
            // ifindex equals its peer's gets its "link up" handled up to a second
            // late (a non-urgent linkwatch event), dropping the first packets.
            // The peer gets the lower index, as with `ip link add NAME type veth peer
            // name PEER` (the kernel registers the peer first), so listings are in the
            // tutorials' order (veth1@veth0 before veth0@veth1).
            let index = next_ifindex(2);
            // Stable MACs (the model's), so the EUI-64 link-local and SLAAC addresses
            // of a lab are the same in every run and in its plan.
            let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
                .name(peer.as_str())
                .index(index)
                .address(stable_mac(peer_node.name.as_str(), peer.as_str()).to_vec());
            if !std::ptr::eq(self, peer_node) {
                peer_msg = peer_msg.setns_by_fd(peer_node.ns()?.as_raw_fd());
            }
            let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
                .name(name.as_str())
                .index(index + 1)
                .address(stable_mac(self.name.as_str(), name.as_str()).to_vec())
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())));
            if let Some(master) = master {
                msg = msg.controller(master);
            }
            if up {
                msg = msg.up();
            }
            let msg = msg.build();
            let Err(e) = self.handle()?.link().add(msg).execute().await else {
                // Both indexes are ours: the addresses and ports added next need no lookup.
                self.known_links.borrow_mut().insert(name.to_string(), (index + 1, LinkKind::Veth));
                peer_node.known_links.borrow_mut().insert(peer.to_string(), (index, LinkKind::Veth));
                return Ok(());
            };
            let io = nl_to_io(e);
            if io.raw_os_error() == Some(libc::EBUSY) {
                continue; // that ifindex is taken (a program made links behind our back)
            }
            // EEXIST does not say which end clashed: find out so the message names it.
            if io.raw_os_error() == Some(libc::EEXIST) && self.link(name).await.is_err() {
                return Err(Error::kernel("creating veth peer", peer_node.name.as_str(), peer.as_str(), io));
            }
            return Err(Error::kernel("creating veth", self.name.as_str(), name.as_str(), io));
        }
    }

    /// `ip link set NAME netns TARGET [name NEW]`: moves a link into another node.
    pub async fn move_link(&self, name: &LinkName, target: &Node, new_name: &LinkName) -> Result<()> {
        let msg = LinkUnspec::new_with_name(name.as_str()).setns_by_fd(target.ns()?.as_raw_fd()).build();
        match self.handle()?.link().set(msg).execute().await {
            Ok(()) => {}
            Err(e) => return Err(self.link_error("moving", name, e).await),
        }
        if new_name != name {
            // With an index, IFLA_IFNAME is the new name (`ip link set ... name NEW`).
            let mut rename = LinkUnspec::new_with_index(target.link(name).await?.index).build();
            rename.attributes.push(LinkAttribute::IfName(new_name.to_string()));
            target.handle()?.link().set(rename).execute().await.map_err(|e| {
                Error::kernel("renaming", target.name.as_str(), format!("{name} to {new_name}"), nl_to_io(e))
            })?;
        }
        Ok(())
    }

    /// `ip link add NAME type bridge`, with a MAC address of its own from the start,
    /// as systemd-udev's `MACAddressPolicy=persistent` gives it on today's
    /// distributions. Without one, the bridge takes its first port's address when
    /// the port joins, and that change is a non-urgent link event the kernel handles
    /// up to a second later, leaving the bridge DOWN meanwhile.
    pub async fn create_bridge(&self, name: &LinkName) -> Result<()> {
        loop {
            // Not LinkBridge::new, which also sets the bridge up: `ip link add` leaves
            // it down, and the tutorials' `ip link set br0 up` is a step of its own.
            let msg = LinkMessageBuilder::<LinkBridge>::new(name.as_str())
                .index(next_ifindex(1))
                .address(stable_mac(self.name.as_str(), name.as_str()).to_vec())
                .build();
            match self.handle()?.link().add(msg).execute().await.map_err(nl_to_io) {
                Ok(()) => return Ok(()),
                Err(io) if io.raw_os_error() == Some(libc::EBUSY) => continue,
                Err(io) => return Err(Error::kernel("creating bridge", self.name.as_str(), name.as_str(), io)),
            }
        }
    }

    /// `bridge link set dev PORT learning on|off flood on|off isolated on|off`.
    pub async fn set_bridge_port(&self, port: &LinkName, opts: &crate::model::BridgePortOpts) -> Result<()> {
        let (index, _) = self.link_index(port).await?;
        let mut msg = rtnetlink::LinkBridgePort::new(index);
        if let Some(v) = opts.learning {
            msg = msg.learning(v);
        }
        if let Some(v) = opts.flood {
            msg = msg.flood(v);
        }
        if let Some(v) = opts.isolated {
            msg = msg.isolated(v);
        }
        match self.handle()?.link().set_port(msg.build()).execute().await.map_err(nl_to_io) {
            Ok(()) => Ok(()),
            // The kernel's word for "not a bridge port": the lab's mistake here.
            Err(io) if io.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(Error::kernel(
                "setting bridge port options of",
                self.name.as_str(),
                port.as_str(),
                std::io::Error::other(format!(
                    "{port} is not a port of a bridge: master(node, \"{port}\", BRIDGE) first"
                )),
            )),
            Err(io) => Err(Error::kernel("setting bridge port options of", self.name.as_str(), port.as_str(), io)),
        }
    }

    /// `ip link set NAME up|down`.
    pub async fn set_link_up(&self, name: &LinkName, up: bool) -> Result<()> {
        let msg = LinkUnspec::new_with_name(name.as_str());
        let msg = if up { msg.up() } else { msg.down() }.build();
        match self.handle()?.link().set(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.link_error(if up { "setting up" } else { "setting down" }, name, e).await),
        }
    }

    /// `ip link set NAME master BRIDGE` (or `nomaster` with None).
    pub async fn set_master(&self, name: &LinkName, bridge: Option<&LinkName>) -> Result<()> {
        let msg = LinkUnspec::new_with_name(name.as_str());
        let msg = match bridge {
            Some(bridge) => {
                let (index, kind) = self.link_index(bridge).await?;
                if kind != LinkKind::Bridge && kind != LinkKind::Bond {
                    return Err(Error::kernel(
                        "attaching to",
                        self.name.as_str(),
                        bridge.as_str(),
                        std::io::Error::other(format!("{bridge} is not a bridge (kind {kind})")),
                    ));
                }
                msg.controller(index)
            }
            None => msg.nocontroller(),
        };
        match self.handle()?.link().set(msg.build()).execute().await {
            Ok(()) => Ok(()),
            Err(e) => match self.link_error("setting master of", name, e).await {
                // The bonding driver takes only a port that is down (and opens it itself).
                Error::Kernel { source, .. } if source.raw_os_error() == Some(libc::EPERM) => {
                    Err(bond_port_up(&self.name, name))
                }
                other => Err(other),
            },
        }
    }

    /// `ip link del NAME` (a veth takes its peer with it).
    pub async fn delete_link(&self, name: &LinkName) -> Result<()> {
        let index = self.link(name).await?.index;
        self.handle()?
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|e| Error::kernel("deleting", self.name.as_str(), name.as_str(), nl_to_io(e)))
    }
}

/// A bond refused a port that is up, as the kernel words it, with what to do.
pub(crate) fn bond_port_up(node: &crate::names::NodeName, port: &LinkName) -> Error {
    let mut err = Error::kernel(
        "setting master of",
        node.as_str(),
        port.as_str(),
        std::io::Error::from_raw_os_error(libc::EPERM),
    );
    if let Error::Kernel { help, .. } = &mut err {
        *help = Some(format!(
            "a bond takes only a port that is down (\"Device can not be enslaved while up\"): \
             down(node, \"{port}\") first; the bond brings it up itself"
        ));
    }
    err
}

thread_local! {
    static NEXT_IFINDEX: std::cell::Cell<u32> = const { std::cell::Cell::new(1000) };
}

/// Reserves `count` consecutive interface indexes, distinct across the lab.
pub(super) fn next_ifindex(count: u32) -> u32 {
    NEXT_IFINDEX.with(|n| {
        let first = n.get();
        n.set(first + count);
        first
    })
}
