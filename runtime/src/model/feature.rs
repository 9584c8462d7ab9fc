//! Kernel features a lab may ask for (`requires("vlan")`, `has("vlan")`): their
//! names, what each is for, and what the kernel lacks when it is absent. The
//! kernel backend probes them (backend/kernel/features.rs); this is only the list.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    Veth,
    Bridge,
    BridgeVlanFiltering,
    Vlan,
    Vxlan,
    Macvlan,
    Ipvlan,
    Bond,
    Dummy,
    Wireguard,
    Gre,
    Tun,
    Netem,
    Tbf,
    Htb,
    Nftables,
    Ipv6,
    BrNetfilter,
}

/// One feature's row: how a lab names it, what it is, and what is missing without it.
struct Spec {
    name: &'static str,
    about: &'static str,
    /// The Kconfig option(s) that build it.
    kconfig: &'static str,
    /// The module that holds it when it is not built in (None: part of another one).
    module: Option<&'static str>,
    /// The skip reason when the kernel lacks it.
    absent: &'static str,
}

impl Feature {
    /// Every feature, in the order listings show them.
    pub const ALL: [Feature; 18] = [
        Feature::Veth,
        Feature::Bridge,
        Feature::BridgeVlanFiltering,
        Feature::Vlan,
        Feature::Vxlan,
        Feature::Macvlan,
        Feature::Ipvlan,
        Feature::Bond,
        Feature::Dummy,
        Feature::Wireguard,
        Feature::Gre,
        Feature::Tun,
        Feature::Netem,
        Feature::Tbf,
        Feature::Htb,
        Feature::Nftables,
        Feature::Ipv6,
        Feature::BrNetfilter,
    ];

    fn spec(self) -> Spec {
        let spec = |name, about, kconfig, module, absent| Spec { name, about, kconfig, module, absent };
        match self {
            Feature::Veth => spec(
                "veth",
                "virtual Ethernet pairs (type veth)",
                "CONFIG_VETH",
                Some("veth"),
                "the kernel has no veth pairs (CONFIG_VETH, module veth)",
            ),
            Feature::Bridge => spec(
                "bridge",
                "Ethernet bridges (type bridge)",
                "CONFIG_BRIDGE",
                Some("bridge"),
                "the kernel has no Ethernet bridges (CONFIG_BRIDGE, module bridge)",
            ),
            Feature::BridgeVlanFiltering => spec(
                "bridge_vlan_filtering",
                "bridges that filter by VLAN (vlan_filtering 1)",
                "CONFIG_BRIDGE_VLAN_FILTERING",
                None,
                "the kernel has no VLAN filtering in bridges (CONFIG_BRIDGE_VLAN_FILTERING, part of module bridge)",
            ),
            Feature::Vlan => spec(
                "vlan",
                "802.1Q VLAN links (type vlan)",
                "CONFIG_VLAN_8021Q",
                Some("8021q"),
                "the kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q, module 8021q)",
            ),
            Feature::Vxlan => spec(
                "vxlan",
                "VXLAN tunnels (type vxlan)",
                "CONFIG_VXLAN",
                Some("vxlan"),
                "the kernel has no VXLAN tunnels (CONFIG_VXLAN, module vxlan)",
            ),
            Feature::Macvlan => spec(
                "macvlan",
                "macvlan links on a parent link (type macvlan)",
                "CONFIG_MACVLAN",
                Some("macvlan"),
                "the kernel has no macvlan links (CONFIG_MACVLAN, module macvlan)",
            ),
            Feature::Ipvlan => spec(
                "ipvlan",
                "ipvlan links on a parent link (type ipvlan)",
                "CONFIG_IPVLAN",
                Some("ipvlan"),
                "the kernel has no ipvlan links (CONFIG_IPVLAN, module ipvlan)",
            ),
            Feature::Bond => spec(
                "bond",
                "bonded links (type bond)",
                "CONFIG_BONDING",
                Some("bonding"),
                "the kernel has no link bonding (CONFIG_BONDING, module bonding)",
            ),
            Feature::Dummy => spec(
                "dummy",
                "dummy links (type dummy)",
                "CONFIG_DUMMY",
                Some("dummy"),
                "the kernel has no dummy links (CONFIG_DUMMY, module dummy)",
            ),
            Feature::Wireguard => spec(
                "wireguard",
                "WireGuard tunnels (type wireguard)",
                "CONFIG_WIREGUARD",
                Some("wireguard"),
                "the kernel has no WireGuard (CONFIG_WIREGUARD, module wireguard)",
            ),
            Feature::Gre => spec(
                "gre",
                "GRE tunnels over IPv4 (type gre)",
                "CONFIG_NET_IPGRE",
                Some("ip_gre"),
                "the kernel has no GRE tunnels (CONFIG_NET_IPGRE, module ip_gre)",
            ),
            Feature::Tun => spec(
                "tun",
                "TUN/TAP devices made through /dev/net/tun",
                "CONFIG_TUN",
                Some("tun"),
                "the kernel has no TUN/TAP devices, or /dev/net/tun is missing (CONFIG_TUN, module tun)",
            ),
            Feature::Netem => spec(
                "netem",
                "the netem qdisc: delay, loss, duplication",
                "CONFIG_NET_SCH_NETEM",
                Some("sch_netem"),
                "the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM, module sch_netem)",
            ),
            Feature::Tbf => spec(
                "tbf",
                "the tbf qdisc: a token-bucket rate limit",
                "CONFIG_NET_SCH_TBF",
                Some("sch_tbf"),
                "the kernel has no tbf qdisc (CONFIG_NET_SCH_TBF, module sch_tbf)",
            ),
            Feature::Htb => spec(
                "htb",
                "the htb qdisc: classes with guaranteed rates",
                "CONFIG_NET_SCH_HTB",
                Some("sch_htb"),
                "the kernel has no htb qdisc (CONFIG_NET_SCH_HTB, module sch_htb)",
            ),
            Feature::Nftables => spec(
                "nftables",
                "nftables tables of the inet family",
                "CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET",
                Some("nf_tables"),
                "the kernel has no nftables for the inet family (CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET, \
                 module nf_tables)",
            ),
            Feature::Ipv6 => spec(
                "ipv6",
                "IPv6 (/proc/sys/net/ipv6 exists)",
                "CONFIG_IPV6",
                Some("ipv6"),
                "the kernel has no IPv6, or it was disabled at boot (CONFIG_IPV6, module ipv6, ipv6.disable=1)",
            ),
            Feature::BrNetfilter => spec(
                "br_netfilter",
                "bridged traffic through iptables; net.bridge.* sysctls",
                "CONFIG_BRIDGE_NETFILTER",
                Some("br_netfilter"),
                "the kernel has no br_netfilter loaded, and netlab never loads kernel modules \
                 (CONFIG_BRIDGE_NETFILTER, module br_netfilter: modprobe br_netfilter)",
            ),
        }
    }

    /// The name a lab uses: "vlan", "bridge_vlan_filtering".
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// One line on what the feature is, for listings.
    pub fn about(self) -> &'static str {
        self.spec().about
    }

    /// The Kconfig option(s) that build it into the kernel.
    pub fn kconfig(self) -> &'static str {
        self.spec().kconfig
    }

    /// The kernel module that holds it, where it is one of its own.
    pub fn module(self) -> Option<&'static str> {
        self.spec().module
    }

    /// Why a lab that needs it is skipped on a kernel without it.
    pub fn absent_reason(self) -> &'static str {
        self.spec().absent
    }

    /// Every feature with what it is, one a line (the help of an unknown name).
    pub fn listing() -> String {
        let width = Feature::ALL.iter().map(|f| f.name().len()).max().unwrap_or(0);
        Feature::ALL.iter().map(|f| format!("  {:width$}  {}", f.name(), f.about())).collect::<Vec<_>>().join("\n")
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Feature {
    type Err = Error;

    /// A feature by the name a lab uses ("tap" too, for tun).
    fn from_str(name: &str) -> Result<Feature, Error> {
        if name == "tap" {
            return Ok(Feature::Tun);
        }
        Feature::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| Error::UnknownFeature {
            name: name.to_string(),
            help: Some(format!("netlab can probe for these features:\n{}", Feature::listing())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_feature() {
        for feature in Feature::ALL {
            assert_eq!(feature.name().parse::<Feature>().unwrap(), feature);
            assert_eq!(feature.to_string(), feature.name());
        }
        assert_eq!("tap".parse::<Feature>().unwrap(), Feature::Tun);
        assert_eq!("bridge_vlan_filtering".parse::<Feature>().unwrap(), Feature::BridgeVlanFiltering);
        assert_eq!("br_netfilter".parse::<Feature>().unwrap(), Feature::BrNetfilter);
    }

    #[test]
    fn all_lists_each_feature_once() {
        let mut names: Vec<_> = Feature::ALL.iter().map(|f| f.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Feature::ALL.len());
    }

    #[test]
    fn an_unknown_name_is_the_labs_error_and_lists_the_known_ones() {
        for bad in ["VLAN", "vlans", "", " vlan", "802.1q"] {
            let err = bad.parse::<Feature>().unwrap_err();
            assert_eq!(err.class(), crate::ErrorClass::Script, "{bad:?}");
            assert_eq!(err.to_string(), format!("unknown kernel feature {bad:?}"));
            let help = match &err {
                Error::UnknownFeature { help: Some(help), .. } => help.clone(),
                other => panic!("{other:?}"),
            };
            for feature in Feature::ALL {
                let line = help.lines().find(|l| l.trim_start().starts_with(&format!("{} ", feature.name())));
                assert!(line.is_some_and(|l| l.ends_with(feature.about())), "{feature} in\n{help}");
            }
        }
    }

    #[test]
    fn each_skip_reason_names_the_kconfig_option_and_the_module() {
        for feature in Feature::ALL {
            let reason = feature.absent_reason();
            assert!(reason.starts_with("the kernel has no "), "{reason}");
            assert!(reason.contains(feature.kconfig()), "{feature}: {reason}");
            let module = feature.module().unwrap_or("bridge");
            assert!(reason.contains(&format!("module {module}")), "{feature}: {reason}");
        }
        assert_eq!(
            Feature::Vlan.absent_reason(),
            "the kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q, module 8021q)"
        );
    }
}
