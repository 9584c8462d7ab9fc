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

    /// Pings from many nodes at once (a bounded number in flight), each node its
    /// destinations one after the other (the second finds the next hop the first
    /// resolved); returns per node a report per destination, and how many times the
    /// neighbour tables were flushed on the way.
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
        dsts: &[IpAddr],
        mode: PingMode,
        interval: Duration,
    ) -> Result<(Vec<Vec<PingReport>>, usize)> {
        self.settle()?;
        let mut reports = Vec::with_capacity(sources.len());
        let mut flushes = 0;
        let limit = crate::backend::kernel::neigh::capacity().saturating_sub(NEIGH_MARGIN);
        for chunk in sources.chunks(PING_CONCURRENCY * 4 * ping_threads(sources.len())) {
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
            let all: Vec<Vec<IpAddr>> = chunk.iter().map(|_| dsts.to_vec()).collect();
            let mut done = self.ping_chunk(chunk, &all, mode, interval)?;
            let (_, fulls_after) = crate::backend::kernel::neigh::arp_stats();
            if fulls_after > fulls_before {
                self.flush_neighbours()?;
                flushes += 1;
                // Each node again, to the destinations that did not answer.
                let again: Vec<(usize, Vec<usize>)> = (0..chunk.len())
                    .map(|i| (i, (0..dsts.len()).filter(|d| done[i][*d].received == 0).collect::<Vec<_>>()))
                    .filter(|(_, failed)| !failed.is_empty())
                    .collect();
                let retry: Vec<Rc<Node>> = again.iter().map(|(i, _)| chunk[*i].clone()).collect();
                let to: Vec<Vec<IpAddr>> =
                    again.iter().map(|(_, failed)| failed.iter().map(|d| dsts[*d]).collect()).collect();
                for ((i, failed), redone) in again.into_iter().zip(self.ping_chunk(&retry, &to, mode, interval)?) {
                    for (d, report) in failed.into_iter().zip(redone) {
                        done[i][d] = report;
                    }
                }
            }
            self.neigh_warm.borrow_mut().extend(chunk.iter().map(|n| n.name.to_string()));
            if done.iter().flatten().any(|r| r.received == 0) {
                self.note_unanswered();
            }
            reports.extend(done);
        }
        Ok((reports, flushes))
    }

    /// Pings from each node of `chunk` to its destinations in `dsts` (same index),
    /// one after the other; the nodes at once, a bounded number in flight.
    fn ping_chunk(
        &self,
        chunk: &[Rc<Node>],
        dsts: &[Vec<IpAddr>],
        mode: PingMode,
        interval: Duration,
    ) -> Result<Vec<Vec<PingReport>>> {
        let mut socks = Vec::with_capacity(chunk.len());
        for (node, to) in chunk.iter().zip(dsts) {
            let open = || to.iter().map(|dst| ping::icmp_socket(*dst, &ping::PingOpts::default())).collect();
            let node_socks: std::io::Result<Vec<_>> = node.enter(&self.home, open)?;
            let node_socks =
                node_socks.map_err(|e| Error::kernel("opening an ICMP socket", node.name.as_str(), "", e))?;
            socks.push(node_socks.into_iter().zip(to.iter().copied()).collect::<Vec<_>>());
        }
        // Spread over the CPUs: the kernel delivers a packet sent to a veth, and a
        // bridge's copies of a broadcast to each of its ports, on the CPU that sent it
        // (its input backlog), so pings sent from one thread keep one CPU busy
        // flooding ARP requests while the others idle. Each extra thread, kept on a
        // CPU of its own, sends its share of the nodes with a runtime of its own; this
        // thread sends the first share and keeps the lab's own servers running.
        let threads = ping_threads(chunk.len());
        let mut shares: Vec<Vec<(usize, NodePings)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, node_socks) in socks.into_iter().enumerate() {
            shares[i % threads].push((i, node_socks));
        }
        type Share = Vec<(usize, std::io::Result<Vec<PingReport>>)>;
        let pings = |share| ping_share(share, mode, interval);
        let mut shares = shares.into_iter();
        let mine = shares.next().unwrap_or_default();
        let cpus = if threads > 1 { allowed_cpus() } else { Vec::new() };
        let _home_cpus = cpus.first().and_then(|cpu| PinnedThread::pin(*cpu));
        let (done, others) = std::thread::scope(|scope| {
            let waits: Vec<_> = shares
                .enumerate()
                .map(|(k, share)| {
                    let cpu = cpus.get(k + 1).copied();
                    let (tx, rx) = tokio::sync::oneshot::channel::<Result<Share>>();
                    scope.spawn(move || {
                        let _pinned = cpu.and_then(PinnedThread::pin);
                        let done = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| Error::io("starting a ping thread", e))
                            .and_then(|rt| rt.block_on(interrupt::unless_interrupted(pings(share))));
                        let _ = tx.send(done);
                    });
                    rx
                })
                .collect();
            // This thread's share, then the others', its runtime running all along.
            self.rt.block_on(async {
                let done = interrupt::unless_interrupted(pings(mine)).await;
                let mut others = Vec::with_capacity(waits.len());
                for wait in waits {
                    let died = |_| Err(Error::io("pinging", std::io::Error::other("a ping thread died")));
                    others.push(wait.await.unwrap_or_else(died));
                }
                (done, others)
            })
        });
        let mut all = done?;
        for share in others {
            all.extend(share?);
        }
        all.sort_by_key(|(i, _)| *i);
        if all.len() != chunk.len() {
            return Err(Error::io(
                "pinging",
                std::io::Error::other(format!("{} of {} nodes pinged", all.len(), chunk.len())),
            ));
        }
        all.into_iter()
            .map(|(_, r)| r)
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::kernel("pinging", "several nodes", describe_dsts(dsts), e))
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

/// One node's sockets, each to its destination, pinged in order.
type NodePings = Vec<(socket2::Socket, IpAddr)>;

/// The longest a ping waits to start while the one started before it is still
/// unanswered (see ping_share).
const START_STAGGER: Duration = Duration::from_millis(3);

/// Pings from each node of `share` (its index in the batch, its sockets), up to
/// PING_CONCURRENCY nodes at once; per node its reports, or why it could not ping.
///
/// A node starts once the node before it has had its first answer (or error, or
/// timeout), or START_STAGGER after that node started, whichever comes first. A
/// first ping from a node often needs ARP, whose broadcast a bridge copies to every
/// port into the sending CPU's input backlog (net.core.netdev_max_backlog packets,
/// 1000 by default, machine-wide): at 1000 ports one broadcast fills it, and a
/// second one sent before the first was delivered is dropped whole, answers and
/// all. Answered pings start the next at once; unanswered ones hold the next back
/// only briefly, so timeouts still overlap.
async fn ping_share(
    share: Vec<(usize, NodePings)>,
    mode: PingMode,
    interval: Duration,
) -> Vec<(usize, std::io::Result<Vec<PingReport>>)> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let node = |i: usize, socks: NodePings, first: Rc<tokio::sync::Notify>| async move {
        let mut reports = Vec::with_capacity(socks.len());
        for (sock, dst) in socks {
            let report = ping::ping(sock, dst, mode, interval, ping::DEFAULT_SIZE).await;
            first.notify_one();
            match report {
                Ok(report) => reports.push(report),
                Err(e) => return (i, Err(e)),
            }
        }
        (i, Ok(reports))
    };
    let mut waiting = share.into_iter().peekable();
    let mut running = FuturesUnordered::new();
    let mut done = Vec::new();
    // The node started last: when, and whether it has had its first answer.
    let mut last: Option<(tokio::time::Instant, Rc<tokio::sync::Notify>)> = None;
    loop {
        let gate_open = match &last {
            None => true,
            Some((at, _)) => at.elapsed() >= START_STAGGER,
        };
        if running.len() < PING_CONCURRENCY && gate_open {
            if let Some((i, socks)) = waiting.next() {
                let first = Rc::new(tokio::sync::Notify::new());
                running.push(node(i, socks, first.clone()));
                last = Some((tokio::time::Instant::now(), first));
                continue;
            }
        }
        if running.is_empty() && waiting.peek().is_none() {
            break;
        }
        let startable = running.len() < PING_CONCURRENCY && waiting.peek().is_some();
        // Nothing to start (or the gate open already): wait for a node to end.
        let Some((at, first)) = last.clone().filter(|_| startable) else {
            if let Some(result) = running.next().await {
                done.push(result);
            }
            continue;
        };
        tokio::select! {
            Some(result) = running.next() => done.push(result),
            _ = first.notified() => last = None,
            _ = tokio::time::sleep_until(at + START_STAGGER) => {}
        }
    }
    done
}

/// How many threads send a batch of `nodes` pings: one per CPU (at most 4), and one
/// for a batch no larger than the pings in flight on one thread.
fn ping_threads(nodes: usize) -> usize {
    if nodes <= PING_CONCURRENCY {
        return 1;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.clamp(1, 4).min(nodes.div_ceil(PING_CONCURRENCY))
}

/// The CPUs this thread may run on, from the one it runs on now: labs run side by
/// side (netlab test, netlab grade) then pin their threads to different CPUs.
fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    let Ok(set) = sched_getaffinity(nix::unistd::Pid::from_raw(0)) else { return Vec::new() };
    let mut cpus: Vec<usize> = (0..CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false)).collect();
    // SAFETY: sched_getcpu has no arguments and no preconditions.
    let now = usize::try_from(unsafe { libc::sched_getcpu() }).unwrap_or(0);
    let from = cpus.iter().position(|c| *c == now).unwrap_or(0);
    cpus.rotate_left(from);
    cpus
}

/// The calling thread kept on one CPU until this is dropped (then where it was).
struct PinnedThread {
    before: nix::sched::CpuSet,
}

impl PinnedThread {
    fn pin(cpu: usize) -> Option<PinnedThread> {
        use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
        let me = nix::unistd::Pid::from_raw(0);
        let before = sched_getaffinity(me).ok()?;
        let mut only = CpuSet::new();
        only.set(cpu).ok()?;
        sched_setaffinity(me, &only).ok()?;
        Some(PinnedThread { before })
    }
}

impl Drop for PinnedThread {
    fn drop(&mut self) {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.before);
    }
}

/// The destinations of a batch of pings, for an error message.
fn describe_dsts(dsts: &[Vec<IpAddr>]) -> String {
    let mut all: Vec<IpAddr> = dsts.iter().flatten().copied().collect();
    all.sort();
    all.dedup();
    all.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}
