//! What bridges' settings and VLAN tables, bonds and WireGuard links do, as the
//! kernel does it: a port joins a bridge with the bridge's default VLAN (pvid,
//! untagged), a bond's ports take its MAC address and the first usable one is
//! active, until it fails.

use std::io;

use super::{NodeState, Topology};
use crate::error::{Error, Result};
use crate::model::state::LinkKind;
use crate::model::{BondMode, BridgeOpts, BridgeVlan, WgConfig};
use crate::names::{LinkName, NodeName};

impl Topology {
    /// `ip link set BRIDGE type bridge ...`.
    pub(super) fn set_bridge(&mut self, node: &NodeName, bridge: &LinkName, opts: &BridgeOpts) -> Result<()> {
        let n = self.node_mut(node.as_str())?;
        let b = n.link(bridge)?;
        if b.kind != LinkKind::Bridge {
            let why = io::Error::other(format!("{bridge} is not a bridge (kind {})", b.kind));
            return Err(Error::kernel("changing bridge options of", node.as_str(), bridge.as_str(), why));
        }
        let index = b.index;
        let old_pvid = b.extra.bridge.default_pvid;
        n.by_index_mut(index).expect("link exists").extra.bridge.apply(opts);
        // A new default VLAN replaces the old one where it is still as the bridge set it.
        if let Some(new) = opts.default_pvid.filter(|p| *p != old_pvid) {
            for l in n.links.iter_mut().filter(|l| l.index == index || l.master == Some(index)) {
                let had = l.extra.vlans.len();
                l.extra.vlans.retain(|v| *v != (old_pvid, true, true));
                if (l.extra.vlans.len() != had || old_pvid == 0) && new != 0 {
                    set_vlan(&mut l.extra.vlans, new, true, true);
                }
            }
        }
        Ok(())
    }

    /// `bridge vlan add|del dev DEV vid VID [pvid] [untagged] [self]`.
    pub(super) fn bridge_vlan(
        &mut self,
        node: &NodeName,
        dev: &LinkName,
        vid: u16,
        flags: Option<(bool, bool)>,
    ) -> Result<()> {
        let n = self.node_mut(node.as_str())?;
        let l = n.link(dev)?;
        let is_port = l.master.and_then(|m| n.by_index(m)).is_some_and(|m| m.kind == LinkKind::Bridge);
        if l.kind != LinkKind::Bridge && !is_port {
            let op = if flags.is_some() { "adding bridge VLAN to" } else { "deleting bridge VLAN of" };
            let why = io::Error::other(format!(
                "{dev} is neither a bridge nor a bridge's port: master(node, \"{dev}\", BRIDGE) first"
            ));
            return Err(Error::kernel(op, node.as_str(), dev.as_str(), why));
        }
        let index = l.index;
        let vlans = &mut n.by_index_mut(index).expect("link exists").extra.vlans;
        match flags {
            Some((pvid, untagged)) => set_vlan(vlans, vid, pvid, untagged),
            None => {
                let had = vlans.len();
                vlans.retain(|v| v.0 != vid);
                if vlans.len() == had {
                    return Err(Error::kernel(
                        "deleting bridge VLAN of",
                        node.as_str(),
                        format!("{dev} vid {vid}"),
                        io::Error::from_raw_os_error(libc::ENOENT),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `wg set LINK ...`.
    pub(super) fn set_wireguard(&mut self, node: &NodeName, link: &LinkName, config: &WgConfig) -> Result<()> {
        let n = self.node_mut(node.as_str())?;
        let l = n.link(link)?;
        if l.kind != LinkKind::Wireguard {
            let why = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
            return Err(Error::kernel("configuring WireGuard link", node.as_str(), link.as_str(), why));
        }
        let index = l.index;
        let wg = &mut n.by_index_mut(index).expect("link exists").extra.wireguard;
        let mut merged = config.clone();
        if let Some(old) = wg.take() {
            merged.listen_port = config.listen_port.or(old.listen_port);
            merged.peers = old.peers;
            for peer in &config.peers {
                match merged.peers.iter_mut().find(|p| p.public_key == peer.public_key) {
                    Some(p) => {
                        p.allowed_ips = peer.allowed_ips.clone();
                        p.endpoint = peer.endpoint.or(p.endpoint);
                        p.keepalive = peer.keepalive.or(p.keepalive);
                    }
                    None => merged.peers.push(peer.clone()),
                }
            }
        }
        *wg = Some(merged);
        Ok(())
    }

    /// After every op: a bond whose active port left or lost its carrier takes the
    /// first of its ports that has one (the kernel's reselection, without a primary).
    pub(super) fn reselect_bonds(&mut self) {
        let mut choices = Vec::new();
        for (name, n) in &self.nodes {
            for bond in n.links.iter().filter(|l| l.kind == LinkKind::Bond) {
                let usable =
                    |i: &u32| n.by_index(*i).is_some_and(|p| p.master == Some(bond.index) && self.carrier(n, p));
                let active = match bond.extra.bond_active {
                    Some(a) if usable(&a) => Some(a),
                    _ => bond.extra.bond_ports.iter().copied().find(|p| usable(p)),
                };
                let ports: Vec<u32> = bond
                    .extra
                    .bond_ports
                    .iter()
                    .copied()
                    .filter(|p| n.by_index(*p).is_some_and(|l| l.master == Some(bond.index)))
                    .collect();
                choices.push((name.clone(), bond.index, active, ports));
            }
        }
        for (name, index, active, ports) in choices {
            if let Some(b) = self.nodes.get_mut(&name).and_then(|n| n.by_index_mut(index)) {
                b.extra.bond_active = active;
                b.extra.bond_ports = ports;
            }
        }
    }

    /// `wg show LINK` as the model knows it: no handshake, no traffic.
    pub fn wireguard(&self, node: &str, link: &LinkName) -> Result<crate::model::WgState> {
        let l = self.node(node)?.link(link)?;
        if l.kind != LinkKind::Wireguard {
            let why = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
            return Err(Error::kernel("reading WireGuard link", node, link.as_str(), why));
        }
        let Some(wg) = &l.extra.wireguard else {
            return Ok(crate::model::WgState { public_key: None, listen_port: 0, peers: Vec::new() });
        };
        let peers = wg
            .peers
            .iter()
            .map(|p| {
                let mut allowed_ips = p.allowed_ips.iter().map(|n| n.trunc()).collect::<Vec<_>>();
                allowed_ips.sort();
                crate::model::WgPeerState {
                    public_key: p.public_key,
                    endpoint: p.endpoint,
                    allowed_ips,
                    keepalive: p.keepalive.unwrap_or(0),
                    handshake_age: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                }
            })
            .collect();
        Ok(crate::model::WgState {
            public_key: Some(crate::model::wg_public_key(&wg.private_key)),
            listen_port: wg.listen_port.unwrap_or(0),
            peers,
        })
    }

    /// `bridge vlan show`: the bridges' and their ports' VLANs, by ifindex and vid.
    pub fn bridge_vlans(&self, node: &str) -> Result<Vec<BridgeVlan>> {
        let n = self.node(node)?;
        let mut out = Vec::new();
        for l in &n.links {
            let is_port = l.master.and_then(|m| n.by_index(m)).is_some_and(|m| m.kind == LinkKind::Bridge);
            if l.kind != LinkKind::Bridge && !is_port {
                continue;
            }
            for (vid, pvid, untagged) in &l.extra.vlans {
                out.push(BridgeVlan { link_index: l.index, vid: *vid, pvid: *pvid, untagged: *untagged });
            }
        }
        Ok(out)
    }
}

impl NodeState {
    /// A link joins (or leaves) a bridge or a bond: what the kernel does besides
    /// setting its master. `master` is the new master's index.
    pub(super) fn joined(&mut self, port: u32, old: Option<u32>, master: Option<u32>) {
        let old_kind = old.and_then(|m| self.by_index(m)).map(|m| m.kind);
        let new = master.and_then(|m| self.by_index(m)).map(|m| (m.kind, m.mac, m.extra.bridge.default_pvid));
        let Some(p) = self.by_index_mut(port) else { return };
        if old_kind == Some(LinkKind::Bridge) {
            p.extra.vlans.clear();
        }
        if old_kind == Some(LinkKind::Bond) {
            // The kernel closes the port and gives it its own address back.
            if let Some(mac) = p.extra.mac_before_bond.take() {
                p.mac = mac;
            }
            self.set_up(port, false);
        }
        let Some(p) = self.by_index_mut(port) else { return };
        match new {
            Some((LinkKind::Bridge, _, pvid)) if pvid != 0 => p.extra.vlans = vec![(pvid, true, true)],
            Some((LinkKind::Bond, mac, _)) => {
                let mode = master.and_then(|m| self.bond_mode(m));
                let p = self.by_index_mut(port).expect("link exists");
                // The bond gives the port its address, but in the modes that balance
                // by MAC address.
                if !matches!(mode, Some(BondMode::BalanceTlb | BondMode::BalanceAlb)) {
                    p.extra.mac_before_bond = Some(p.mac);
                    p.mac = mac;
                }
                if let Some(b) = master.and_then(|m| self.by_index_mut(m)) {
                    b.extra.bond_ports.push(port);
                }
                // The kernel opens the port itself (dev_open).
                self.set_up(port, true);
            }
            _ => {}
        }
    }

    fn bond_mode(&self, index: u32) -> Option<BondMode> {
        match &self.by_index(index)?.spec {
            Some(crate::model::LinkSpec::Bond(b)) => Some(b.mode),
            _ => None,
        }
    }
}

/// Adds VLAN `vid` (or changes its flags); a new pvid takes the flag from the old one.
fn set_vlan(vlans: &mut Vec<(u16, bool, bool)>, vid: u16, pvid: bool, untagged: bool) {
    if pvid {
        for v in vlans.iter_mut() {
            v.1 = false;
        }
    }
    match vlans.iter_mut().find(|v| v.0 == vid) {
        Some(v) => *v = (vid, pvid, untagged),
        None => vlans.push((vid, pvid, untagged)),
    }
    vlans.sort_by_key(|v| v.0);
}
