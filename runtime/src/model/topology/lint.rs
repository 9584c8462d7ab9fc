//! Warnings about a network the kernel accepts but that rarely is what a lab
//! means: overlapping subnets on one node, one address on two connected nodes.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::Topology;
use crate::model::state::LinkKind;
use crate::names::{LinkName, NodeName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintKind {
    /// Two links of one node have subnets that overlap: which one a packet
    /// leaves by depends on the routes' order, not on the lab's intent.
    OverlappingSubnets,
    /// Two nodes on one L2 segment have the same address: ARP answers race.
    DuplicateAddress,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lint {
    pub kind: LintKind,
    /// The nodes concerned, in the topology's order.
    pub nodes: Vec<NodeName>,
    pub message: String,
}

/// One link of one node, by ifindex (stable across renames).
type LinkKey = (String, u32);

impl Topology {
    pub fn lints(&self) -> Vec<Lint> {
        let mut lints = self.overlaps();
        lints.extend(self.duplicates());
        lints
    }

    fn overlaps(&self) -> Vec<Lint> {
        let mut lints = Vec::new();
        for n in self.nodes() {
            let addrs: Vec<(&LinkName, IpNet)> = n
                .links
                .iter()
                .filter(|l| l.kind != LinkKind::Loopback)
                .flat_map(|l| l.addrs.iter().map(move |a| (&l.name, *a)))
                .collect();
            for (i, (la, a)) in addrs.iter().enumerate() {
                for (lb, b) in &addrs[i + 1..] {
                    let (na, nb) = (a.trunc(), b.trunc());
                    if la != lb && (na.contains(&nb) || nb.contains(&na)) {
                        lints.push(Lint {
                            kind: LintKind::OverlappingSubnets,
                            nodes: vec![n.name.clone()],
                            message: format!(
                                "{}: {a} on {la} and {b} on {lb} are in overlapping subnets; \
                                 packets to them leave by whichever route comes first",
                                n.name
                            ),
                        });
                    }
                }
            }
        }
        lints
    }

    fn duplicates(&self) -> Vec<Lint> {
        let segment = self.segment_ids();
        // (segment, address) -> (node, link) holding it, in the topology's order.
        let mut holders: BTreeMap<(usize, String), Vec<(NodeName, LinkName)>> = BTreeMap::new();
        for n in self.nodes() {
            for l in n.links.iter().filter(|l| l.kind != LinkKind::Loopback) {
                let seg = segment[&(n.name.to_string(), l.index)];
                for a in &l.addrs {
                    holders.entry((seg, a.addr().to_string())).or_default().push((n.name.clone(), l.name.clone()));
                }
            }
        }
        let mut lints = Vec::new();
        for ((_, ip), who) in holders {
            let mut nodes: Vec<NodeName> = Vec::new();
            for (node, _) in &who {
                if !nodes.contains(node) {
                    nodes.push(node.clone());
                }
            }
            if nodes.len() < 2 {
                continue;
            }
            let places: Vec<String> = who.iter().map(|(n, l)| format!("{l} in {n}")).collect();
            lints.push(Lint {
                kind: LintKind::DuplicateAddress,
                nodes,
                message: format!("{ip} is on {}, which share one L2 segment: ARP replies race", places.join(" and ")),
            });
        }
        lints
    }

    /// The L2 segments: links joined by a veth pair or a bridge port, as lists of
    /// (node, link), sorted.
    pub fn segments(&self) -> Vec<Vec<(NodeName, LinkName)>> {
        let ids = self.segment_ids();
        let mut by_id: BTreeMap<usize, Vec<(NodeName, LinkName)>> = BTreeMap::new();
        for n in self.nodes() {
            for l in &n.links {
                by_id.entry(ids[&(n.name.to_string(), l.index)]).or_default().push((n.name.clone(), l.name.clone()));
            }
        }
        let mut all: Vec<Vec<(NodeName, LinkName)>> = by_id.into_values().collect();
        for s in &mut all {
            s.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
        }
        all.sort_by(|a, b| (a[0].0.as_str(), a[0].1.as_str()).cmp(&(b[0].0.as_str(), b[0].1.as_str())));
        all
    }

    /// A segment id for every link (union-find over veth pairs and bridge ports).
    fn segment_ids(&self) -> BTreeMap<LinkKey, usize> {
        let keys: Vec<LinkKey> =
            self.nodes().flat_map(|n| n.links.iter().map(move |l| (n.name.to_string(), l.index))).collect();
        let at: BTreeMap<&LinkKey, usize> = keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut parent: Vec<usize> = (0..keys.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let mut join = |a: usize, b: usize| {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            parent[ra.max(rb)] = ra.min(rb);
        };
        for n in self.nodes() {
            for l in &n.links {
                let me = at[&(n.name.to_string(), l.index)];
                if let Some(m) = l.master {
                    join(me, at[&(n.name.to_string(), m)]);
                }
                if let Some((pn, p)) = self.peer_of(l) {
                    join(me, at[&(pn.name.to_string(), p.index)]);
                }
            }
        }
        (0..keys.len()).map(|i| (keys[i].clone(), root(&mut parent, i))).collect()
    }
}
