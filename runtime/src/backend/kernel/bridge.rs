//! A bridge's own settings (`ip link set br0 type bridge stp_state 1 ...`) and its
//! VLAN table (`bridge vlan add|del|show`): IFLA_BR_* in the link's IFLA_INFO_DATA,
//! and AF_BRIDGE link requests with IFLA_AF_SPEC, as iproute2 sends them.

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    AfSpecBridge, BridgeStpState, BridgeVlanInfoFlags, InfoBridge, InfoData, InfoKind, LinkAttribute, LinkExtentMask,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkBridge, LinkBridgeVlan, LinkMessageBuilder};

use crate::backend::kernel::node::Node;
use crate::error::{nl_to_io, Error, Result};
use crate::model::{BridgeConf, BridgeOpts, BridgeVlan, Feature, LinkKind};
use crate::names::LinkName;

/// The kernel keeps the bridge's times in clock_t (USER_HZ, 100 a second).
const TICKS: u32 = 100;

impl Node {
    /// `ip link set BRIDGE type bridge stp_state S ageing_time T forward_delay D
    /// vlan_filtering F vlan_default_pvid P`.
    pub async fn set_bridge(&self, bridge: &LinkName, opts: &BridgeOpts) -> Result<()> {
        let (index, kind) = self.link_index(bridge).await?;
        if kind != LinkKind::Bridge {
            return Err(not_a_bridge("changing bridge options of", &self.name, bridge, kind));
        }
        let mut infos = Vec::new();
        if let Some(stp) = opts.stp {
            infos.push(InfoBridge::StpState(if stp { BridgeStpState::KernelStp } else { BridgeStpState::Disabled }));
        }
        if let Some(s) = opts.ageing {
            infos.push(InfoBridge::AgeingTime(s.saturating_mul(TICKS)));
        }
        if let Some(s) = opts.forward_delay {
            infos.push(InfoBridge::ForwardDelay(s.saturating_mul(TICKS)));
        }
        if let Some(f) = opts.vlan_filtering {
            infos.push(InfoBridge::VlanFiltering(f));
        }
        if let Some(p) = opts.default_pvid {
            infos.push(InfoBridge::VlanDefaultPvid(p));
        }
        let msg = LinkMessageBuilder::<LinkBridge>::new_with_info_kind(InfoKind::Bridge)
            .index(index)
            .set_info_data(InfoData::Bridge(infos))
            .build();
        // RTM_NEWLINK, as `ip link set ... type bridge` sends: RTM_SETLINK ignores
        // IFLA_LINKINFO.
        match self.handle()?.link().change(msg).execute().await.map_err(nl_to_io) {
            Ok(()) => Ok(()),
            // Without CONFIG_BRIDGE_VLAN_FILTERING the bridge refuses the VLAN options.
            Err(io) if io.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                Err(Error::missing_feature(Feature::BridgeVlanFiltering, self.name.as_str(), bridge.as_str()))
            }
            Err(io) => Err(Error::kernel("changing bridge options of", self.name.as_str(), bridge.as_str(), io)),
        }
    }

    /// `bridge vlan add dev DEV vid VID [pvid] [untagged] [self]` (or `del`).
    pub async fn bridge_vlan(
        &self,
        dev: &LinkName,
        vid: u16,
        flags: Option<(bool, bool)>,
        bridge_self: bool,
    ) -> Result<()> {
        let (index, _) = self.link_index(dev).await?;
        let mut bits = BridgeVlanInfoFlags::empty();
        if let Some((pvid, untagged)) = flags {
            if pvid {
                bits |= BridgeVlanInfoFlags::Pvid;
            }
            if untagged {
                bits |= BridgeVlanInfoFlags::Untagged;
            }
        }
        let mut msg = LinkBridgeVlan::new(index).vlan(vid, bits);
        if bridge_self {
            msg = msg.bridge_self();
        }
        let msg = msg.build();
        let (op, sent) = match flags {
            // RTM_SETLINK and RTM_DELLINK of family AF_BRIDGE, as `bridge vlan` sends them.
            Some(_) => ("adding bridge VLAN to", self.handle()?.link().set(msg).execute().await),
            None => ("deleting bridge VLAN of", self.handle()?.link().del_with_message(msg).execute().await),
        };
        match sent.map_err(nl_to_io) {
            Ok(()) => Ok(()),
            // No VLAN table without CONFIG_BRIDGE_VLAN_FILTERING; also the word for
            // "not a bridge port", which the lab can tell by what it made.
            Err(io) if io.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                let (_, kind) = self.link_index(dev).await?;
                let link = self.link(dev).await?;
                if kind == LinkKind::Bridge || link.master.is_some() {
                    Err(Error::missing_feature(Feature::BridgeVlanFiltering, self.name.as_str(), dev.as_str()))
                } else {
                    Err(Error::kernel(
                        op,
                        self.name.as_str(),
                        dev.as_str(),
                        std::io::Error::other(format!(
                            "{dev} is neither a bridge nor a bridge's port: master(node, \"{dev}\", BRIDGE) first"
                        )),
                    ))
                }
            }
            Err(io) => Err(Error::kernel(op, self.name.as_str(), format!("{dev} vid {vid}"), io)),
        }
    }

    /// `bridge vlan show`: every port's and bridge's VLANs, one entry per VID.
    pub async fn bridge_vlans(&self) -> Result<Vec<BridgeVlan>> {
        let msgs: Vec<_> = self
            .handle()?
            .link()
            .get()
            .set_filter_mask(AddressFamily::Bridge, vec![LinkExtentMask::Brvlan])
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::kernel("listing bridge VLANs", self.name.as_str(), "", nl_to_io(e)))?;
        let mut vlans = Vec::new();
        for msg in &msgs {
            for attr in &msg.attributes {
                let LinkAttribute::AfSpecBridge(specs) = attr else { continue };
                for spec in specs {
                    if let AfSpecBridge::VlanInfo(info) = spec {
                        vlans.push(BridgeVlan {
                            link_index: msg.header.index,
                            vid: info.vid,
                            pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
                            untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
                        });
                    }
                }
            }
        }
        vlans.dedup();
        Ok(vlans)
    }
}

fn not_a_bridge(op: &'static str, node: &crate::names::NodeName, link: &LinkName, kind: LinkKind) -> Error {
    Error::kernel(
        op,
        node.as_str(),
        link.as_str(),
        std::io::Error::other(format!("{link} is not a bridge (kind {kind})")),
    )
}

/// A bridge's IFLA_INFO_DATA as `ip -d link` shows it; what the kernel leaves out
/// (the VLAN options without CONFIG_BRIDGE_VLAN_FILTERING) keeps its default.
pub(super) fn bridge_conf(infos: &[InfoBridge]) -> BridgeConf {
    let mut conf = BridgeConf { vlan_filtering: false, ..BridgeConf::default() };
    for info in infos {
        match info {
            InfoBridge::StpState(s) => conf.stp = !matches!(s, BridgeStpState::Disabled),
            InfoBridge::AgeingTime(t) => conf.ageing = t / TICKS,
            InfoBridge::ForwardDelay(t) => conf.forward_delay = t / TICKS,
            InfoBridge::VlanFiltering(f) => conf.vlan_filtering = *f,
            InfoBridge::VlanDefaultPvid(p) => conf.default_pvid = *p,
            _ => {}
        }
    }
    conf
}
