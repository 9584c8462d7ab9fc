//! WireGuard links' keys and peers (`wg set`, `wg show`), over the kernel's
//! `wireguard` generic netlink family, opened from inside the node.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use ipnet::IpNet;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::GenlMessage;
use netlink_packet_wireguard::{
    WireguardAddressFamily, WireguardAllowedIp, WireguardAllowedIpAttr, WireguardAttribute, WireguardCmd,
    WireguardMessage, WireguardPeer, WireguardPeerAttribute, WireguardPeerFlags,
};

use crate::backend::kernel::node::Node;
use crate::error::{Error, Result};
use crate::model::{Feature, WgConfig, WgPeerState, WgState};
use crate::names::LinkName;

impl Node {
    /// A generic netlink connection opened inside the node, for one request.
    fn genl(&self) -> Result<genetlink::GenetlinkHandle> {
        let (conn, handle, _) = self
            .enter_home(genetlink::new_connection)?
            .map_err(|e| Error::io(format!("opening generic netlink in {}", self.name), e))?;
        tokio::spawn(conn);
        Ok(handle)
    }

    /// `wg set LINK private-key FILE listen-port PORT peer KEY endpoint ...
    /// allowed-ips ... persistent-keepalive ...`: peers added or updated, each one's
    /// allowed IPs replaced.
    pub async fn set_wireguard(&self, link: &LinkName, config: &WgConfig) -> Result<()> {
        let peers = config
            .peers
            .iter()
            .map(|p| {
                let mut attrs = vec![
                    WireguardPeerAttribute::PublicKey(p.public_key),
                    WireguardPeerAttribute::Flags(WireguardPeerFlags::ReplaceAllowedIps),
                ];
                if let Some(e) = p.endpoint {
                    attrs.push(WireguardPeerAttribute::Endpoint(e));
                }
                if let Some(k) = p.keepalive {
                    attrs.push(WireguardPeerAttribute::PersistentKeepalive(k));
                }
                attrs.push(WireguardPeerAttribute::AllowedIps(p.allowed_ips.iter().map(allowed_ip).collect()));
                WireguardPeer(attrs)
            })
            .collect();
        let mut attributes = vec![
            WireguardAttribute::IfName(link.to_string()),
            WireguardAttribute::PrivateKey(config.private_key),
            WireguardAttribute::Peers(peers),
        ];
        if let Some(port) = config.listen_port {
            attributes.push(WireguardAttribute::ListenPort(port));
        }
        let mut msg = NetlinkMessage::from(GenlMessage::from_payload(WireguardMessage {
            cmd: WireguardCmd::SetDevice,
            attributes,
        }));
        msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        self.wg_request(link, "configuring WireGuard link", msg).await.map(|_| ())
    }

    /// `wg show LINK`, from the kernel.
    pub async fn wireguard(&self, link: &LinkName) -> Result<WgState> {
        let mut msg = NetlinkMessage::from(GenlMessage::from_payload(WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: vec![WireguardAttribute::IfName(link.to_string())],
        }));
        msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let answers = self.wg_request(link, "reading WireGuard link", msg).await?;
        let mut state = WgState { public_key: None, listen_port: 0, peers: Vec::new() };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        for answer in answers {
            for attr in answer.attributes {
                match attr {
                    WireguardAttribute::PublicKey(k) if k != [0; 32] => state.public_key = Some(k),
                    WireguardAttribute::ListenPort(p) => state.listen_port = p,
                    WireguardAttribute::Peers(peers) => {
                        state.peers.extend(peers.iter().filter_map(|p| peer_state(&p.0, now)))
                    }
                    _ => {}
                }
            }
        }
        Ok(state)
    }

    async fn wg_request(
        &self,
        link: &LinkName,
        op: &'static str,
        msg: NetlinkMessage<GenlMessage<WireguardMessage>>,
    ) -> Result<Vec<WireguardMessage>> {
        let mut handle = self.genl()?;
        let failed = |e: std::io::Error| Error::kernel(op, self.name.as_str(), link.as_str(), e);
        let mut answers = match handle.request(msg).await {
            Ok(answers) => answers,
            // No `wireguard` family: the kernel has no WireGuard.
            Err(genetlink::GenetlinkError::AttributeNotFound(_)) | Err(genetlink::GenetlinkError::NetlinkError(_)) => {
                return Err(Error::missing_feature(Feature::Wireguard, self.name.as_str(), link.as_str()))
            }
            Err(e) => return Err(failed(std::io::Error::other(e.to_string()))),
        };
        let mut out = Vec::new();
        while let Some(answer) = answers.next().await {
            let answer = answer.map_err(|e| failed(std::io::Error::other(e.to_string())))?;
            match answer.payload {
                NetlinkPayload::InnerMessage(genl) => out.push(genl.payload),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    let io = e.to_io();
                    if io.raw_os_error() == Some(libc::ENODEV) {
                        return Err(self.no_such_link(link).await);
                    }
                    return Err(failed(io));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

fn allowed_ip(net: &IpNet) -> WireguardAllowedIp {
    let family = if net.addr().is_ipv6() { WireguardAddressFamily::Ipv6 } else { WireguardAddressFamily::Ipv4 };
    WireguardAllowedIp(vec![
        WireguardAllowedIpAttr::Family(family),
        WireguardAllowedIpAttr::IpAddr(net.network()),
        WireguardAllowedIpAttr::Cidr(net.prefix_len()),
    ])
}

fn peer_state(attrs: &[WireguardPeerAttribute], now: i64) -> Option<WgPeerState> {
    let mut peer = WgPeerState {
        public_key: [0; 32],
        endpoint: None,
        allowed_ips: Vec::new(),
        keepalive: 0,
        handshake_age: None,
        rx_bytes: 0,
        tx_bytes: 0,
    };
    let mut key = None;
    for attr in attrs {
        match attr {
            WireguardPeerAttribute::PublicKey(k) => key = Some(*k),
            WireguardPeerAttribute::Endpoint(e) => peer.endpoint = Some(*e),
            WireguardPeerAttribute::PersistentKeepalive(k) => peer.keepalive = *k,
            WireguardPeerAttribute::LastHandshake(t) if t.seconds > 0 => {
                peer.handshake_age = Some(now.saturating_sub(t.seconds).max(0) as u64)
            }
            WireguardPeerAttribute::RxBytes(b) => peer.rx_bytes = *b,
            WireguardPeerAttribute::TxBytes(b) => peer.tx_bytes = *b,
            WireguardPeerAttribute::AllowedIps(ips) => {
                for ip in ips {
                    let addr = ip.0.iter().find_map(|a| match a {
                        WireguardAllowedIpAttr::IpAddr(a) => Some(*a),
                        _ => None,
                    });
                    let cidr = ip.0.iter().find_map(|a| match a {
                        WireguardAllowedIpAttr::Cidr(c) => Some(*c),
                        _ => None,
                    });
                    if let Some(net) = addr.zip(cidr).and_then(|(a, c)| IpNet::new(a, c).ok()) {
                        peer.allowed_ips.push(net);
                    }
                }
            }
            _ => {}
        }
    }
    peer.allowed_ips.sort();
    peer.public_key = key?;
    Some(peer)
}
