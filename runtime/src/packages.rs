//! Where the programs labs run come from, for help lines (a leaf: errors and
//! exec both use it).

/// Debian package that provides a program the seeds use, for the help line.
pub fn package_for(program: &str) -> Option<&'static str> {
    Some(match program {
        "ip" | "bridge" | "ss" => "iproute2",
        "ping" => "iputils-ping",
        "nft" => "nftables",
        "iptables" | "iptables-save" | "iptables-restore" => "iptables",
        "curl" => "curl",
        "tcpdump" => "tcpdump",
        "brctl" => "bridge-utils",
        "ethtool" => "ethtool",
        "ifconfig" | "netstat" | "route" | "arp" => "net-tools",
        "nginx" => "nginx-light",
        "dig" | "nslookup" => "dnsutils",
        _ => return None,
    })
}
