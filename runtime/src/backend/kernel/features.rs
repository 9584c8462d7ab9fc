//! Kernel feature probes (`requires("vlan")`, `has("vlan")`): each feature is made
//! for real in a scratch network namespace of its own, outside the lab (no name
//! under /run/netns), which goes with everything in it when the probe ends. Nothing
//! is set up, so nothing sends a packet. The kernel's answer decides: "no such kind"
//! (EOPNOTSUPP for a link kind, ENOENT for a qdisc) is absent; any other failure
//! is an error, never a quiet "absent".
//!
//! Asking never loads a module: a module that is neither loaded nor built in is
//! answered from the running kernel's module list (present when it can be loaded),
//! because loading one changes the machine — ip_gre adds its fallback tunnels (gre0,
//! gretap0, erspan0) to every namespace; bonding and dummy add bond0 and dummy0 to
//! the machine's initial namespace unless their max_bonds and numdummies parameters
//! are 0. The lab's own use of the feature loads the module, as the tutorial's
//! command would.

mod nftables;

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};

use futures::{StreamExt, TryStreamExt};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_core::{DefaultNla, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use rtnetlink::packet_route::link::{IpVlanMode, LinkMessage, MacVlanMode};
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{
    LinkBond, LinkBridge, LinkDummy, LinkGre, LinkIpVlan, LinkMacVlan, LinkMessageBuilder, LinkVeth, LinkVlan,
    LinkVxlan, LinkWireguard,
};

use super::nsenter::{current_netns, in_netns_file};
use super::Lab;
use crate::error::{nl_to_io, Error, Result};
use crate::model::Feature;

impl Lab {
    /// Whether the kernel has `feature`, probed once per lab and remembered.
    pub fn has_feature(&self, feature: Feature) -> Result<bool> {
        if let Some(&known) = self.features.borrow().get(&feature) {
            return Ok(known);
        }
        // A module that is not loaded yet is not loaded by asking: the answer is
        // whether the machine has it to load (the lab's own use then loads it).
        let present = match available_without_loading(feature) {
            Some(answer) => answer,
            None => self.rt.block_on(probe(&self.home, feature))?,
        };
        self.features.borrow_mut().insert(feature, present);
        Ok(present)
    }
}

/// For a feature whose module is neither loaded nor built in: whether the machine
/// has that module (modules.dep of the running kernel), answered without loading
/// it, so that asking never changes the machine (a loaded ip_gre adds gre0 to every
/// namespace; bonding or dummy may add bond0/dummy0 to the machine's own). None: the
/// probe decides (no module support, the module is in the kernel already, or the
/// module lists cannot be read).
fn available_without_loading(feature: Feature) -> Option<bool> {
    let module = match feature {
        Feature::BridgeVlanFiltering => Some("bridge"),
        f => f.module(),
    }?;
    let module = module.replace('-', "_");
    if !std::path::Path::new("/proc/modules").exists()
        || std::path::Path::new(&format!("/sys/module/{module}")).exists()
    {
        return None;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let dir = std::path::Path::new("/lib/modules").join(release.trim());
    let names = |file: &str| -> Option<Vec<String>> {
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        Some(text.lines().filter_map(|l| module_name(l.split(':').next()?)).collect())
    };
    if names("modules.builtin").unwrap_or_default().contains(&module) {
        return None;
    }
    Some(names("modules.dep")?.contains(&module))
}

/// `kernel/net/8021q/8021q.ko.xz` -> `8021q`; `kernel/drivers/net/ip-gre.ko` -> `ip_gre`.
fn module_name(path: &str) -> Option<String> {
    let file = path.trim().rsplit('/').next()?;
    let stem = file.split(".ko").next()?;
    (!stem.is_empty()).then(|| stem.replace('-', "_"))
}

/// Probes `feature` in a scratch namespace made for it; `home` is the namespace the
/// calling thread belongs in. Must run inside the lab's tokio runtime.
async fn probe(home: &File, feature: Feature) -> Result<bool> {
    let scratch = Scratch::open(home, feature)?;
    let answer = scratch.probe(home, feature).await;
    scratch.close().await;
    answer
}

/// Qdiscs go on the loopback link, which every namespace has, at index 1.
const LOOPBACK_INDEX: i32 = 1;

/// A network namespace for one probe, with an rtnetlink connection opened inside
/// it. The namespace lives as long as this handle and that connection.
struct Scratch {
    feature: Feature,
    ns: File,
    handle: rtnetlink::Handle,
    connection: tokio::task::JoinHandle<()>,
}

impl Scratch {
    fn open(home: &File, feature: Feature) -> Result<Scratch> {
        let failed = |op: &str, e: io::Error| probe_error(feature, op, e);
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| failed("creating the namespace", e.into()))?;
        // The thread is inside the new namespace: take what we need and always go home.
        let inside = (|| {
            let ns = current_netns()?;
            let connection = rtnetlink::new_connection().map_err(|e| failed("opening netlink", e))?;
            Ok((ns, connection))
        })();
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io("returning to the lab host's namespace", e.into()))?;
        let (ns, (connection, handle, _)) = inside?;
        Ok(Scratch { feature, ns, handle, connection: tokio::spawn(connection) })
    }

    /// Lets go of the namespace: the connection ends once its handle is gone (its
    /// socket holds the namespace), and the kernel then destroys the namespace with
    /// whatever the probe made in it.
    async fn close(self) {
        let Scratch { ns, handle, connection, .. } = self;
        drop(handle);
        let _ = connection.await;
        drop(ns);
    }

    async fn probe(&self, home: &File, feature: Feature) -> Result<bool> {
        match feature {
            Feature::Veth => self.link("creating a veth pair", LinkVeth::new("probe0", "probe1").build()).await,
            Feature::Bridge => self.link("creating a bridge", bridge().build()).await,
            Feature::BridgeVlanFiltering => {
                // Made first and changed after: a bridge the kernel refuses to make
                // with vlan_filtering is unregistered at once, which waits for RCU.
                if !self.link("creating a bridge", bridge().build()).await? {
                    return Ok(false);
                }
                let msg = bridge().vlan_filtering(true).build();
                let changed = self.handle.link().change(msg).execute().await.map_err(nl_to_io);
                answer(self.feature, "setting vlan_filtering 1 on a bridge", changed, &[libc::EOPNOTSUPP])
            }
            Feature::Vlan => {
                let parent = self.parent().await?;
                self.link("creating a vlan link", LinkVlan::new("probe.10", parent, 10).build()).await
            }
            Feature::Macvlan => {
                let parent = self.parent().await?;
                let msg = LinkMacVlan::new("probe-mv", parent, MacVlanMode::Bridge).build();
                self.link("creating a macvlan link", msg).await
            }
            Feature::Ipvlan => {
                let parent = self.parent().await?;
                let msg = LinkIpVlan::new("probe-ipv", parent, IpVlanMode::L2).build();
                self.link("creating an ipvlan link", msg).await
            }
            Feature::Vxlan => self.link("creating a vxlan link", LinkVxlan::new("probe-vx", 42).build()).await,
            Feature::Bond => self.link("creating a bond", LinkBond::new("probe-bond").build()).await,
            Feature::Dummy => self.link("creating a dummy link", LinkDummy::new("probe-dummy").build()).await,
            Feature::Wireguard => self.link("creating a wireguard link", LinkWireguard::new("probe-wg").build()).await,
            Feature::Gre => {
                // A remote of its own (TEST-NET-1; the tunnel stays down): one without
                // is the same tunnel as the fallback gre0 a loaded ip_gre gives every
                // namespace, refused with EEXIST.
                let msg = LinkGre::new("probe-gre").remote(Ipv4Addr::new(192, 0, 2, 1)).build();
                self.link("creating a gre tunnel", msg).await
            }
            Feature::Netem => self.qdisc("netem", netem_options()).await,
            Feature::Tbf => self.qdisc("tbf", tbf_options()).await,
            Feature::Htb => self.qdisc("htb", htb_options()).await,
            Feature::Tun => self.inside(home, make_tun),
            Feature::Nftables => self.inside(home, nftables::add_table),
            Feature::Ipv6 => self.inside(home, || exists("/proc/sys/net/ipv6")),
            Feature::BrNetfilter => self.inside(home, || exists("/proc/sys/net/bridge")),
        }
    }

    /// Makes a link; "no such kind" is EOPNOTSUPP ("Unknown device type").
    async fn link(&self, op: &'static str, msg: LinkMessage) -> Result<bool> {
        let sent = self.handle.link().add(msg).execute().await.map_err(nl_to_io);
        answer(self.feature, op, sent, &[libc::EOPNOTSUPP])
    }

    /// The veth that a vlan, macvlan or ipvlan link is made on; its index. (Not one
    /// chosen in advance: a loaded ip_gre module gives every new namespace its
    /// fallback tunnels, gre0 and others, at the first free indexes.)
    async fn parent(&self) -> Result<u32> {
        let failed = |op: &str, e: io::Error| probe_error(self.feature, op, e);
        let msg = LinkVeth::new("probe0", "probe1").build();
        let made = self.handle.link().add(msg).execute().await.map_err(nl_to_io);
        made.map_err(|e| failed("creating the parent veth pair", e))?;
        let found = self.handle.link().get().match_name("probe0").execute().try_next().await;
        match found.map_err(nl_to_io) {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(failed("looking up the parent veth", io::ErrorKind::NotFound.into())),
            Err(e) => Err(failed("looking up the parent veth", e)),
        }
    }

    /// Adds a root qdisc of `kind` on lo (`tc qdisc add dev lo root handle 1: KIND`);
    /// "no such kind" is ENOENT ("Specified qdisc kind is unknown").
    async fn qdisc(&self, kind: &'static str, options: TcAttribute) -> Result<bool> {
        let mut msg = TcMessage::with_index(LOOPBACK_INDEX);
        msg.header.parent = TcHandle::ROOT;
        msg.header.handle = TcHandle { major: 1, minor: 0 };
        msg.attributes.push(TcAttribute::Kind(kind.to_string()));
        msg.attributes.push(options);
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewQueueDiscipline(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        let sent = async {
            let mut replies = self.handle.clone().request(req).map_err(nl_to_io)?;
            while let Some(reply) = replies.next().await {
                if let NetlinkPayload::Error(e) = reply.payload {
                    if let Some(code) = e.code {
                        return Err(io::Error::from_raw_os_error(-code.get()));
                    }
                }
            }
            Ok(())
        };
        answer(self.feature, "adding a qdisc on lo", sent.await, &[libc::ENOENT, libc::EOPNOTSUPP])
    }

    /// Runs a synchronous probe with the thread inside the scratch namespace.
    fn inside(&self, home: &File, probe: impl FnOnce() -> Probed) -> Result<bool> {
        let (op, outcome, absent) = in_netns_file(home, &self.ns, probe)?;
        answer(self.feature, op, outcome, absent)
    }
}

/// What a synchronous probe did, how it went, and which errnos say "not there".
type Probed = (String, io::Result<()>, &'static [i32]);

/// A bridge left down, as `ip link add NAME type bridge` makes it.
fn bridge() -> LinkMessageBuilder<LinkBridge> {
    LinkMessageBuilder::<LinkBridge>::new("probe-br")
}

/// Reads the kernel's answer to a probe.
fn answer(feature: Feature, op: impl Into<String>, outcome: io::Result<()>, absent: &[i32]) -> Result<bool> {
    match outcome {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error().is_some_and(|code| absent.contains(&code)) => Ok(false),
        Err(e) => Err(probe_error(feature, op, e)),
    }
}

fn probe_error(feature: Feature, op: impl Into<String>, source: io::Error) -> Error {
    let help = match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "the sandbox lacks a privilege this probe needs; run netlab as root".to_string()
        }
        _ => format!(
            "the kernel's answer says neither yes nor no; please report it with the kernel's version ({})",
            kernel_release()
        ),
    };
    Error::FeatureProbe { feature: feature.name(), op: op.into(), source, help: Some(help) }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "uname -r".to_string())
}

/// A /proc/sys folder that exists only where the kernel has the feature; read from
/// inside the scratch namespace, since net sysctls are per namespace.
fn exists(path: &'static str) -> Probed {
    (format!("looking up {path}"), std::fs::metadata(path).map(|_| ()), &[libc::ENOENT])
}

/// `ip tuntap add mode tun`: a TUN device made through /dev/net/tun (rtnetlink
/// cannot make one). Without the driver or the device node, the open fails.
fn make_tun() -> Probed {
    let file = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        Ok(file) => file,
        Err(e) => return ("opening /dev/net/tun".into(), Err(e), &[libc::ENOENT, libc::ENODEV, libc::ENXIO]),
    };
    // SAFETY: ifreq is plain data, for which all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in ifr.ifr_name.iter_mut().zip(b"probe-tun") {
        *slot = *byte as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `ifr` is, and the
    // descriptor is open for the call's whole length.
    let made = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    if made < 0 {
        return ("creating a tun device (TUNSETIFF)".into(), Err(io::Error::last_os_error()), &[]);
    }
    // Persistent, closing the file leaves the device to the namespace's teardown in
    // the background; otherwise close() unregisters it, waiting for RCU (~20 ms).
    // SAFETY: TUNSETPERSIST takes its argument by value; the descriptor is open.
    let kept = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) };
    let outcome = if kept < 0 { Err(io::Error::last_os_error()) } else { Ok(()) };
    ("making the tun device persistent (TUNSETPERSIST)".into(), outcome, &[])
}

/// netem's TCA_OPTIONS is a bare struct tc_netem_qopt: latency, limit, loss, gap,
/// duplicate, jitter (u32 each); only the limit is set, at tc's default.
fn netem_options() -> TcAttribute {
    const TCA_OPTIONS: u16 = 2;
    let qopt: Vec<u8> = [0u32, 1000, 0, 0, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
    TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, qopt))
}

/// tbf's TCA_TBF_PARMS (struct tc_tbf_qopt: rate and peak rate as struct
/// tc_ratespec, then limit, buffer and mtu) and TCA_TBF_BURST. 100 Mbit/s with a
/// burst above lo's MTU, since a smaller one makes the kernel warn in its log.
fn tbf_options() -> TcAttribute {
    const TCA_TBF_PARMS: u16 = 1;
    const TCA_TBF_BURST: u16 = 6;
    const TC_LINKLAYER_ETHERNET: u8 = 1;
    const RATE: u32 = 12_500_000; // bytes per second
    const BURST: u32 = 100_000; // bytes
                                // The burst as time, in the kernel's psched ticks of 64 ns.
    let buffer = (u64::from(BURST) * 1_000_000_000 / u64::from(RATE) / 64) as u32;
    let mut parms = Vec::with_capacity(36);
    // struct tc_ratespec: cell_log, linklayer, overhead, cell_align, mpu, rate.
    parms.extend([0, TC_LINKLAYER_ETHERNET]);
    parms.extend([0u16.to_ne_bytes(), 0i16.to_ne_bytes(), 0u16.to_ne_bytes()].concat());
    parms.extend(RATE.to_ne_bytes());
    parms.extend([0u8; 12]); // no peak rate
    for v in [BURST, buffer, 0] {
        parms.extend(v.to_ne_bytes());
    }
    TcAttribute::Options(vec![
        TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, parms)),
        TcOption::Other(DefaultNla::new(TCA_TBF_BURST, BURST.to_ne_bytes().to_vec())),
    ])
}

/// htb's TCA_HTB_INIT (struct tc_htb_glob: version 3, rate2quantum 10, default
/// class, debug, direct packets), as `tc qdisc add ... htb` sends it.
fn htb_options() -> TcAttribute {
    const TCA_HTB_INIT: u16 = 2;
    let glob: Vec<u8> = [3u32, 10, 0, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
    TcAttribute::Options(vec![TcOption::Other(DefaultNla::new(TCA_HTB_INIT, glob))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use rtnetlink::packet_core::Nla;

    fn os(code: i32) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(code))
    }

    #[test]
    fn the_kernels_answer_decides() {
        let absent = &[libc::EOPNOTSUPP];
        assert!(answer(Feature::Vlan, "creating a vlan link", Ok(()), absent).unwrap());
        assert!(!answer(Feature::Vlan, "creating a vlan link", os(libc::EOPNOTSUPP), absent).unwrap());
        // Not "absent" for a probe that does not list it: an unknown qdisc is
        // ENOENT, but a link probe's ENOENT says something else went wrong.
        let err = answer(Feature::Vlan, "creating a vlan link", os(libc::ENOENT), absent).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Environment);
        assert!(err.to_string().starts_with("cannot tell whether the kernel has vlan: creating a vlan link"), "{err}");
    }

    #[test]
    fn a_refused_probe_is_the_environments_error_not_an_absence() {
        for code in [libc::EPERM, libc::EACCES] {
            let err = answer(Feature::Netem, "adding a qdisc on lo", os(code), &[libc::ENOENT]).unwrap_err();
            assert_eq!(err.class(), ErrorClass::Environment);
            let Error::FeatureProbe { help: Some(help), .. } = &err else { panic!("{err:?}") };
            assert!(help.contains("root"), "{help}");
        }
        let err = answer(Feature::Tbf, "adding a qdisc on lo", os(libc::EINVAL), &[libc::ENOENT]).unwrap_err();
        let Error::FeatureProbe { help: Some(help), .. } = &err else { panic!("{err:?}") };
        assert!(help.contains("report"), "{help}");
    }

    #[test]
    fn qdisc_options_have_the_kernels_sizes() {
        let TcAttribute::Other(netem) = netem_options() else { panic!("netem options are a bare struct") };
        assert_eq!(netem.value_len(), 24, "struct tc_netem_qopt");
        let TcAttribute::Options(tbf) = tbf_options() else { panic!("tbf options are nested") };
        assert_eq!(tbf.iter().map(|o| o.value_len()).collect::<Vec<_>>(), [36, 4], "tc_tbf_qopt, burst");
        let TcAttribute::Options(htb) = htb_options() else { panic!("htb options are nested") };
        assert_eq!(htb[0].value_len(), 20, "struct tc_htb_glob");
    }
}

#[cfg(test)]
mod module_tests {
    use super::module_name;

    #[test]
    fn module_names_from_module_lists() {
        assert_eq!(module_name("kernel/net/8021q/8021q.ko.xz").as_deref(), Some("8021q"));
        let dep_line = "kernel/net/ipv4/ip_gre.ko: kernel/net/ipv4/gre.ko";
        assert_eq!(module_name(dep_line.split(':').next().unwrap()).as_deref(), Some("ip_gre"));
        assert_eq!(module_name("kernel/drivers/net/ip-gre.ko.zst").as_deref(), Some("ip_gre"));
        assert_eq!(module_name("kernel/net/bridge/bridge.ko").as_deref(), Some("bridge"));
    }
}
