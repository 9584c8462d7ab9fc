//! The neighbour (ARP / NDP) table: what `arp` or `ip neigh` shows.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};

use crate::error::{nl_to_io, Error, Result};
use crate::link::format_mac;
use crate::node::Node;

#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub mac: Option<String>,
    pub link_index: u32,
    pub state: String,
}

impl Node {
    pub async fn neighbours(&self) -> Result<Vec<Neighbour>> {
        let msgs: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::kernel("listing neighbours", self.name.as_str(), "", nl_to_io(e)))?;
        Ok(msgs.iter().filter_map(neighbour).collect())
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
        NeighbourState::Incomplete => "INCOMPLETE",
        NeighbourState::Reachable => "REACHABLE",
        NeighbourState::Stale => "STALE",
        NeighbourState::Delay => "DELAY",
        NeighbourState::Probe => "PROBE",
        NeighbourState::Failed => "FAILED",
        NeighbourState::Noarp => "NOARP",
        NeighbourState::Permanent => "PERMANENT",
        _ => "NONE",
    };
    Some(Neighbour { ip: ip?, mac, link_index: msg.header.ifindex, state: state.into() })
}
