//! The neighbour (ARP / NDP) table: what `arp` or `ip neigh` shows.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::AddressFamily;

use crate::backend::kernel::link::format_mac;
use crate::backend::kernel::node::Node;
use crate::error::{nl_to_io, Error, Result};

pub use crate::model::state::{FdbEntry, FdbState, NeighState, Neighbour};
use crate::names::LinkName;

impl Node {
    async fn neighbour_messages(&self) -> Result<Vec<NeighbourMessage>> {
        self.handle()?
            .neighbours()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::kernel("listing neighbours", self.name.as_str(), "", nl_to_io(e)))
    }

    /// Deletes the node's learned (not permanent) neighbour entries, like
    /// `ip neigh flush all`.
    pub async fn flush_neighbours(&self) -> Result<()> {
        self.flush_neighbours_of(None).await
    }

    /// `ip neigh flush all` (None) or `ip neigh flush dev DEV`: the entries added as
    /// permanent or noarp stay, as iproute2 leaves them.
    pub async fn flush_neighbours_of(&self, dev: Option<u32>) -> Result<()> {
        let handle = self.handle()?;
        for msg in self.neighbour_messages().await? {
            if matches!(msg.header.state, NeighbourState::Permanent | NeighbourState::Noarp)
                || dev.is_some_and(|d| msg.header.ifindex != d)
                || msg.header.family == AddressFamily::Bridge
            {
                continue;
            }
            // An entry that vanished meanwhile (garbage collected) is fine.
            let _ = handle.neighbours().del(msg).execute().await;
        }
        Ok(())
    }

    /// `ip neigh add IP lladdr MAC dev DEV nud STATE`.
    pub async fn add_neighbour(&self, dev: &LinkName, ip: IpAddr, mac: &[u8; 6], state: NeighState) -> Result<()> {
        let (index, _) = self.link_index(dev).await?;
        let state = match state {
            NeighState::Permanent => NeighbourState::Permanent,
            NeighState::Noarp => NeighbourState::Noarp,
            NeighState::Stale => NeighbourState::Stale,
            _ => NeighbourState::Reachable,
        };
        self.handle()?
            .neighbours()
            .add(index, ip)
            .link_layer_address(mac)
            .state(state)
            .execute()
            .await
            .map_err(|e| Error::kernel("adding neighbour", self.name.as_str(), format!("{ip} dev {dev}"), nl_to_io(e)))
    }

    /// `ip neigh del IP dev DEV`.
    pub async fn delete_neighbour(&self, dev: &LinkName, ip: IpAddr) -> Result<()> {
        let (index, _) = self.link_index(dev).await?;
        let what = format!("{ip} dev {dev}");
        let found = self.neighbour_messages().await?.into_iter().find(|m| {
            m.header.ifindex == index
                && m.attributes.iter().any(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => IpAddr::V4(*a) == ip,
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => IpAddr::V6(*a) == ip,
                    _ => false,
                })
        });
        let Some(msg) = found else {
            return Err(Error::kernel(
                "deleting neighbour",
                self.name.as_str(),
                what,
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        };
        self.handle()?
            .neighbours()
            .del(msg)
            .execute()
            .await
            .map_err(|e| Error::kernel("deleting neighbour", self.name.as_str(), what, nl_to_io(e)))
    }

    /// `bridge fdb show br BRIDGE`: the MAC addresses the bridge knows, by port.
    pub async fn fdb(&self, bridge: &LinkName) -> Result<Vec<FdbEntry>> {
        let (bridge_index, _) = self.link_index(bridge).await?;
        let mut req = self.handle()?.neighbours().get();
        req.message_mut().header.family = AddressFamily::Bridge;
        let msgs: Vec<NeighbourMessage> = req.execute().try_collect().await.map_err(|e| {
            Error::kernel("listing the forwarding database of", self.name.as_str(), bridge.as_str(), nl_to_io(e))
        })?;
        let mut entries = Vec::new();
        for msg in msgs {
            let mut mac = None;
            let mut master = None;
            let mut vlan = None;
            for attr in &msg.attributes {
                match attr {
                    NeighbourAttribute::LinkLayerAddress(l) => mac = Some(format_mac(l)),
                    NeighbourAttribute::Controller(m) => master = Some(*m),
                    NeighbourAttribute::Vlan(v) => vlan = Some(*v),
                    _ => {}
                }
            }
            // This bridge's entries: those of its ports (master) and its own (self).
            let of_bridge = master == Some(bridge_index) || (master.is_none() && msg.header.ifindex == bridge_index);
            let Some(mac) = mac.filter(|_| of_bridge) else { continue };
            let state = if msg.header.state == NeighbourState::Permanent {
                FdbState::Permanent
            } else if msg.header.state == NeighbourState::Noarp {
                FdbState::Static
            } else {
                FdbState::Learned
            };
            entries.push(FdbEntry { mac, port_index: msg.header.ifindex, vlan, state });
        }
        Ok(entries)
    }

    /// Deletes the entries still being resolved or that failed (INCOMPLETE, FAILED).
    pub async fn forget_unresolved_neighbours(&self) -> Result<()> {
        let handle = self.handle()?;
        for msg in self.neighbour_messages().await? {
            if matches!(msg.header.state, NeighbourState::Incomplete | NeighbourState::Failed) {
                let _ = handle.neighbours().del(msg).execute().await;
            }
        }
        Ok(())
    }

    /// Whether an entry is being resolved (INCOMPLETE): packets wait for it.
    pub async fn resolving_neighbours(&self) -> Result<bool> {
        Ok(self.neighbour_messages().await?.iter().any(|m| m.header.state == NeighbourState::Incomplete))
    }

    /// The neighbour table (`ip neigh`).
    pub async fn neighbours(&self) -> Result<Vec<Neighbour>> {
        Ok(self.neighbour_messages().await?.iter().filter_map(neighbour).collect())
    }
}

fn neighbour(msg: &NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => ip = Some(IpAddr::V6(*a)),
            NeighbourAttribute::LinkLayerAddress(l) => mac = Some(format_mac(l)),
            _ => {}
        }
    }
    let state = match msg.header.state {
        NeighbourState::Incomplete => NeighState::Incomplete,
        NeighbourState::Reachable => NeighState::Reachable,
        NeighbourState::Stale => NeighState::Stale,
        NeighbourState::Delay => NeighState::Delay,
        NeighbourState::Probe => NeighState::Probe,
        NeighbourState::Failed => NeighState::Failed,
        NeighbourState::Noarp => NeighState::Noarp,
        NeighbourState::Permanent => NeighState::Permanent,
        _ => NeighState::None,
    };
    Some(Neighbour { ip: ip?, mac, link_index: msg.header.ifindex, state })
}

/// The kernel's neighbour table is one table for the whole machine, all namespaces
/// together; past `net.ipv4.neigh.default.gc_thresh3` entries new ones are refused
/// ("neighbour table overflow") and packets dropped. The limit can only be read and
/// changed in the machine's initial namespace, so netlab reads it before entering
/// its sandbox (`remember_capacity`), and never changes it.
static CAPACITY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
/// /proc/net/stat/arp_cache exists only in the initial namespace: opened before
/// the sandbox, read later through this handle.
static ARP_STATS: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

pub fn remember_capacity() {
    // From inside another tool's network namespace the file is missing; PID 1's view
    // is the initial namespace's.
    let stats =
        std::fs::File::open("/proc/net/stat/arp_cache").or_else(|_| std::fs::File::open("/proc/1/net/stat/arp_cache"));
    if let Ok(f) = stats {
        let _ = ARP_STATS.set(f);
    }
    let value = std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    let _ = CAPACITY.set(value);
}

/// The machine-wide neighbour table limit (1024 when unknown).
pub fn capacity() -> usize {
    CAPACITY.get().copied().unwrap_or(1024)
}

/// Entries in the machine-wide IPv4 neighbour table now (/proc/net/stat/arp_cache).
pub fn entries_in_use() -> usize {
    arp_stats().0
}

/// (entries now, table_fulls so far): the second counts the times the kernel
/// refused a new entry because the table was full.
pub fn arp_stats() -> (usize, u64) {
    use std::os::unix::fs::FileExt;
    let Some(file) = ARP_STATS.get() else { return (0, 0) };
    let mut buf = vec![0u8; 16384];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    let entries = rows.first().and_then(|r| r.first()).and_then(|h| usize::from_str_radix(h, 16).ok()).unwrap_or(0);
    let fulls = rows.iter().filter_map(|r| r.last()).filter_map(|h| u64::from_str_radix(h, 16).ok()).sum();
    (entries, fulls)
}

/// Which neighbour table: ARP (IPv4) or neighbour discovery (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighTable {
    Arp,
    Ndisc,
}

impl Node {
    /// `ip ntable change name arp_cache|ndisc_cache dev LINK retrans MS`: a link's
    /// neighbour retransmit time, over netlink (writing retrans_time_ms under
    /// /proc/sys costs a path walk through a directory holding every link of the node).
    pub async fn set_neighbour_retrans(&self, table: NeighTable, index: u32, ms: u64) -> Result<()> {
        use futures::StreamExt;
        use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
        use rtnetlink::packet_route::neighbour_table::{
            NeighbourTableAttribute, NeighbourTableMessage, NeighbourTableParameter,
        };
        use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
        let (family, name) = match table {
            NeighTable::Arp => (AddressFamily::Inet, "arp_cache"),
            NeighTable::Ndisc => (AddressFamily::Inet6, "ndisc_cache"),
        };
        let mut msg = NeighbourTableMessage::default();
        msg.header.family = family;
        msg.attributes = vec![
            NeighbourTableAttribute::Name(name.to_string()),
            NeighbourTableAttribute::Parms(vec![
                NeighbourTableParameter::Ifindex(index),
                NeighbourTableParameter::RetransTime(ms),
            ]),
        ];
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::SetNeighbourTable(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let fail = |e: std::io::Error| Error::kernel("tuning neighbour timing", self.name.as_str(), name, e);
        let mut replies = self.handle()?.request(req).map_err(|e| fail(nl_to_io(e)))?;
        while let Some(reply) = replies.next().await {
            if let NetlinkPayload::Error(e) = reply.payload {
                if let Some(code) = e.code {
                    return Err(fail(std::io::Error::from_raw_os_error(-code.get())));
                }
            }
        }
        Ok(())
    }
}
