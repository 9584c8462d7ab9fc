//! Addresses: parsing at the boundary, `ip addr add/del`, and listing.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::AddressFamily;

use crate::backend::kernel::node::Node;
use crate::error::{nl_to_io, Error, Result};
use crate::names::LinkName;

/// "10.0.0.1/24" (host bits kept). A bare address is refused: `ip` would make it a
/// /32, which is the seed-001 trap (the peer is then "Network is unreachable").
pub fn parse_cidr(text: &str) -> Result<IpNet> {
    match text.trim().parse::<IpNet>() {
        Ok(net) => Ok(net),
        Err(_) => {
            let (reason, help) = if text.parse::<IpAddr>().is_ok() {
                (
                    "the prefix length is missing".to_string(),
                    Some(format!("write {text}/24 (or /32 on purpose); `ip` would silently take /32")),
                )
            } else {
                (
                    "not an address with a prefix length".to_string(),
                    Some("e.g. \"10.0.0.1/24\" or \"fd00::1/64\"".into()),
                )
            };
            Err(Error::BadAddress { value: text.to_string(), expected: "address/prefix", reason, help })
        }
    }
}

pub fn parse_ip(text: &str) -> Result<IpAddr> {
    text.trim().parse::<IpAddr>().map_err(|_| Error::BadAddress {
        value: text.to_string(),
        expected: "IP address",
        reason: "not an IPv4 or IPv6 address".into(),
        help: Some(if text.contains('/') {
            "give a single address without a prefix length, e.g. \"10.0.0.1\"".into()
        } else {
            "e.g. \"10.0.0.1\" or \"fd00::1\"".into()
        }),
    })
}

/// A network prefix such as "10.0.0.0/24" (host bits must be zero) or "default".
pub fn parse_prefix(text: &str) -> Result<Option<IpNet>> {
    if text == "default" {
        return Ok(None);
    }
    let net = parse_cidr(text)?;
    if net.trunc() != net {
        return Err(Error::BadAddress {
            value: text.to_string(),
            expected: "network prefix",
            reason: "it has host bits set".into(),
            help: Some(format!("did you mean {}?", net.trunc())),
        });
    }
    Ok(Some(net))
}

pub use crate::model::state::AddrState;

impl Node {
    /// `ip addr add CIDR dev LINK`; IPv6 addresses skip duplicate address detection
    /// so they are usable at once (nodad), as labs expect.
    pub async fn add_address(&self, link: &LinkName, cidr: IpNet) -> Result<()> {
        let (index, _) = self.link_index(link).await?;
        let mut req = self.handle()?.address().add(index, cidr.addr(), cidr.prefix_len());
        if cidr.addr().is_ipv6() {
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        req.execute().await.map_err(|e| {
            Error::kernel("adding address to", self.name.as_str(), format!("{link} ({cidr})"), nl_to_io(e))
        })
    }

    /// `ip addr del CIDR dev LINK`.
    pub async fn delete_address(&self, link: &LinkName, cidr: IpNet) -> Result<()> {
        let (index, _) = self.link_index(link).await?;
        let mut found = None;
        for msg in self.address_messages().await? {
            let state = addr_state(&msg);
            if msg.header.index == index && state.as_ref().map(|s| s.cidr) == Some(cidr) {
                found = Some(msg);
            }
        }
        let msg = found.ok_or_else(|| Error::BadAddress {
            value: cidr.to_string(),
            expected: "address",
            reason: format!("{link} in {} does not have it", self.name),
            help: None,
        })?;
        self.handle()?
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(|e| Error::kernel("deleting address from", self.name.as_str(), link.as_str(), nl_to_io(e)))
    }

    async fn address_messages(&self) -> Result<Vec<AddressMessage>> {
        self.handle()?
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::kernel("listing addresses", self.name.as_str(), "", nl_to_io(e)))
    }

    /// All addresses of the node.
    pub async fn addresses(&self) -> Result<Vec<AddrState>> {
        Ok(self.address_messages().await?.iter().filter_map(addr_state).collect())
    }
}

fn addr_state(msg: &AddressMessage) -> Option<AddrState> {
    let mut local = None;
    let mut address = None;
    let mut broadcast = None;
    // IFA_FLAGS (32 bits) supersedes the header's 8 when present.
    let mut bits = u32::from(msg.header.flags.bits());
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Broadcast(b) => broadcast = Some(IpAddr::V4(*b)),
            AddressAttribute::Flags(f) => bits = f.bits(),
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is the interface's own address; IPv6 has only IFA_ADDRESS.
    let ip = match msg.header.family {
        AddressFamily::Inet => local.or(address)?,
        _ => address?,
    };
    let cidr = IpNet::new(ip, msg.header.prefix_len).ok()?;
    let has = |f: AddressFlags| bits & f.bits() != 0;
    let flags = crate::model::AddrFlags {
        dynamic: !has(AddressFlags::Permanent),
        nodad: has(AddressFlags::Nodad),
        dadfailed: has(AddressFlags::Dadfailed),
        tentative: has(AddressFlags::Tentative),
    };
    Some(AddrState { link_index: msg.header.index, cidr, broadcast, flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.0.0.2/24").unwrap().to_string(), "10.0.0.2/24");
        assert!(parse_cidr("fd00::1/64").is_ok());
        let e = parse_cidr("192.168.15.1").unwrap_err();
        assert!(e.to_string().contains("prefix length is missing"), "{e}");
        assert!(parse_cidr("10.0.0.300/24").is_err());
        assert!(parse_cidr("10.0.0.1/33").is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(parse_prefix("default").unwrap(), None);
        assert!(parse_prefix("10.1.0.0/16").unwrap().is_some());
        let e = parse_prefix("10.1.0.5/16").unwrap_err();
        assert!(format!("{e:?}").contains("10.1.0.0/16"), "{e:?}");
    }

    #[test]
    fn ips() {
        assert!(parse_ip("10.0.0.1").is_ok());
        assert!(parse_ip("10.0.0.1/24").is_err());
        assert!(parse_ip("example.com").is_err());
    }
}
