//! Pings from the lab's nodes, one or many at once, from the neighbour state a
//! fresh command would meet.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use super::{answered, Lab, NEIGH_MARGIN, PING_CONCURRENCY, QUIET_AFTER};
use crate::backend::kernel::node::Node;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::ping::{self, PingMode, PingReport};

impl Lab {
    /// Before a negative probe: the neighbour state a fresh command would meet, not
    /// the leftovers of an earlier probe that went unanswered (settle() may already
    /// have cleared them).
    pub fn clear_probe_leftovers(&self) -> Result<()> {
        if self.unanswered.get() {
            self.forget_unresolved_neighbours()?;
        }
        Ok(())
    }

    /// Deletes the neighbour entries of every node that are still being resolved
    /// or have failed (INCOMPLETE, FAILED).
    fn forget_unresolved_neighbours(&self) -> Result<()> {
        self.unanswered.set(false);
        let nodes = self.nodes();
        let limit = self.netlink_limit();
        self.rt.block_on(async {
            for node in &nodes {
                let op = || "ip neigh flush nud incomplete nud failed".to_string();
                answered(limit, node.name.as_str(), op, node.forget_unresolved_neighbours()).await?;
            }
            Ok(())
        })
    }

    /// Whether any node is resolving a neighbour (an INCOMPLETE entry): a packet
    /// may be waiting for it, and its answer may still come.
    async fn resolution_in_progress(&self, nodes: &[Rc<Node>]) -> Result<bool> {
        for node in nodes {
            let op = || "ip neigh show nud incomplete".to_string();
            if answered(self.netlink_limit(), node.name.as_str(), op, node.resolving_neighbours()).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A probe got no answer: it may have left INCOMPLETE/FAILED neighbour
    /// entries behind, which the next change of the network clears.
    pub fn note_unanswered(&self) {
        self.unanswered.set(true);
    }

    /// In-process ping from `node` to `dst`: one request every 100 ms until the
    /// first reply, or, watching a window, one every 10 ms from a clean neighbour
    /// state (see forget_unresolved_neighbours).
    pub fn ping(&self, node: &Node, dst: IpAddr, mode: PingMode, opts: &ping::PingOpts) -> Result<PingReport> {
        self.settle()?;
        let interval = match mode {
            PingMode::UntilReply { .. } | PingMode::FirstAnswer { .. } | PingMode::Count { .. } => {
                Duration::from_millis(100)
            }
            PingMode::Watch { .. } => {
                self.clear_probe_leftovers()?;
                Duration::from_millis(10)
            }
        };
        let scope_id = match &opts.zone {
            Some(link) => self.netlink(node.name.as_str(), || format!("ip link show {link}"), node.link_index(link))?.0,
            None => 0,
        };
        let sock = node
            .enter(&self.home, || ping::icmp_socket(dst, opts))?
            .map_err(|e| Error::kernel("opening an ICMP socket", node.name.as_str(), "", e))?;
        let size = opts.size.unwrap_or(ping::DEFAULT_SIZE);
        let (_, fulls_before) = crate::backend::kernel::neigh::arp_stats();
        // A watch needs to last only while something can still come back: once no
        // neighbour resolution is in progress anywhere in the lab (none INCOMPLETE),
        // a request is answered within microseconds or not at all.
        let nodes = self.nodes();
        let quiet = || async { !self.resolution_in_progress(&nodes).await.unwrap_or(true) };
        let mut report = self
            .rt
            .block_on(interrupt::unless_interrupted(ping::ping_until_quiet(
                sock,
                dst,
                scope_id,
                mode,
                interval,
                size,
                Some((QUIET_AFTER, quiet)),
            )))?
            .map_err(|e| Error::kernel("pinging from", node.name.as_str(), dst.to_string(), e))?;
        report.neigh_table_full = crate::backend::kernel::neigh::arp_stats().1 > fulls_before;
        if report.received < report.sent {
            self.note_unanswered();
        }
        Ok(report)
    }

    /// Pings from many nodes at once (a bounded number in flight); returns each
    /// report and how many times the neighbour tables were flushed on the way.
    ///
    /// The kernel's neighbour table is one for the whole machine (see neigh.rs): a
    /// ping from a node whose entries are not there yet adds about two (the sender's
    /// for its next hop, the next hop's for the sender). Before a chunk that would
    /// not fit, the learned entries are flushed; and if the kernel still refused an
    /// entry during a chunk (its table_fulls counter rose), the entries are flushed
    /// and that chunk's unanswered pings are made again. So no ping is lost to
    /// "neighbour table overflow", and small labs never flush anything.
    pub fn ping_many(
        &self,
        sources: &[Rc<Node>],
        dst: IpAddr,
        mode: PingMode,
        interval: Duration,
    ) -> Result<(Vec<PingReport>, usize)> {
        self.settle()?;
        let mut reports = Vec::with_capacity(sources.len());
        let mut flushes = 0;
        let limit = crate::backend::kernel::neigh::capacity().saturating_sub(NEIGH_MARGIN);
        for chunk in sources.chunks(PING_CONCURRENCY * 4) {
            let cold = chunk.iter().filter(|n| !self.neigh_warm.borrow().contains(n.name.as_str())).count();
            // The kernel's count when it can be read (not from inside another tool's
            // network namespace), and at least what our own pings since the last
            // flush have added.
            let in_use = crate::backend::kernel::neigh::entries_in_use().max(2 * self.neigh_warm.borrow().len());
            if in_use + 2 * cold > limit {
                self.flush_neighbours()?;
                flushes += 1;
            }
            let (_, fulls_before) = crate::backend::kernel::neigh::arp_stats();
            let mut done = self.ping_chunk(chunk, dst, mode, interval)?;
            let (_, fulls_after) = crate::backend::kernel::neigh::arp_stats();
            if fulls_after > fulls_before {
                self.flush_neighbours()?;
                flushes += 1;
                let again: Vec<usize> = (0..chunk.len()).filter(|i| done[*i].received == 0).collect();
                let retry: Vec<Rc<Node>> = again.iter().map(|i| chunk[*i].clone()).collect();
                for (i, report) in again.into_iter().zip(self.ping_chunk(&retry, dst, mode, interval)?) {
                    done[i] = report;
                }
            }
            self.neigh_warm.borrow_mut().extend(chunk.iter().map(|n| n.name.to_string()));
            if done.iter().any(|r| r.received == 0) {
                self.note_unanswered();
            }
            reports.extend(done);
        }
        Ok((reports, flushes))
    }

    fn ping_chunk(
        &self,
        chunk: &[Rc<Node>],
        dst: IpAddr,
        mode: PingMode,
        interval: Duration,
    ) -> Result<Vec<PingReport>> {
        use futures::StreamExt;
        let mut socks = Vec::with_capacity(chunk.len());
        for node in chunk {
            let sock = node
                .enter(&self.home, || ping::icmp_socket(dst, &ping::PingOpts::default()))?
                .map_err(|e| Error::kernel("opening an ICMP socket", node.name.as_str(), "", e))?;
            socks.push(sock);
        }
        // A bounded number in flight: a burst of first packets means a burst of ARP
        // broadcasts, each flooded to every port of a bridge, which overflows the
        // kernel's input backlog and costs ARP retries (seconds).
        let probes = socks.into_iter().map(|s| ping::ping(s, dst, mode, interval, ping::DEFAULT_SIZE));
        let done: Vec<std::io::Result<PingReport>> = self.rt.block_on(interrupt::unless_interrupted(
            futures::stream::iter(probes).buffered(PING_CONCURRENCY).collect(),
        ))?;
        done.into_iter()
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::kernel("pinging", "several nodes", dst.to_string(), e))
    }

    /// Flushes every node's learned neighbour entries.
    fn flush_neighbours(&self) -> Result<()> {
        let nodes = self.nodes();
        self.neigh_warm.borrow_mut().clear();
        let limit = self.netlink_limit();
        self.rt.block_on(async {
            for node in &nodes {
                answered(limit, node.name.as_str(), || "ip neigh flush all".into(), node.flush_neighbours()).await?;
            }
            Ok(())
        })
    }
}
