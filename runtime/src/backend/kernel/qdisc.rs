//! Impairments as root qdiscs: `tc qdisc replace dev LINK root netem ...` / `... tbf
//! ...` and `tc qdisc del dev LINK root` as RTM_NEWQDISC / RTM_DELQDISC, and `tc
//! qdisc show` from the kernel's RTM_GETQDISC dump. rtnetlink has no netem or tbf
//! options: their TCA_OPTIONS are written as the kernel's structs (linux/pkt_sched.h),
//! filled as iproute2's tc fills them (q_netem.c, q_tbf.c).

use std::io;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{DefaultNla, NetlinkMessage, NetlinkPayload, Nla};
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::backend::kernel::node::Node;
use crate::error::{nl_to_io, Error, Result};
use crate::model::impair::{probability, Impairment, QdiscParams, QdiscState, NETEM_LIMIT};
use crate::names::LinkName;

const TCA_OPTIONS: u16 = 2;
// enum TCA_NETEM_*
const TCA_NETEM_REORDER: u16 = 3;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
// enum TCA_TBF_*
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// struct tc_netem_qopt: six u32.
const NETEM_QOPT_LEN: usize = 24;

/// One netlink attribute, padded to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut out = Vec::with_capacity((len + 3) & !3);
    out.extend((len as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(value);
    out.resize((len + 3) & !3, 0);
    out
}

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// netem's TCA_OPTIONS: struct tc_netem_qopt, then its own attributes (the kernel
/// reads them after the struct), as `tc qdisc ... netem` sends them.
fn netem_options(i: &Impairment) -> Vec<u8> {
    let reorder = i.reorder.map(probability).unwrap_or(0);
    // tc: a reorder without a gap reorders with gap 1.
    let gap = u32::from(reorder > 0);
    let loss = i.loss.map(probability).unwrap_or(0);
    let duplicate = i.duplicate.map(probability).unwrap_or(0);
    // latency and jitter in the struct are the old 32-bit fields; tc leaves them 0
    // and sends the 64-bit nanoseconds below.
    let mut out = u32s(&[0, i.limit.unwrap_or(NETEM_LIMIT), loss, gap, duplicate, 0]);
    if let Some(d) = i.delay {
        out.extend(nla(TCA_NETEM_LATENCY64, &(d as i64).to_ne_bytes()));
    }
    if let Some(j) = i.jitter {
        out.extend(nla(TCA_NETEM_JITTER64, &(j as i64).to_ne_bytes()));
    }
    if i.reorder.is_some() {
        out.extend(nla(TCA_NETEM_REORDER, &u32s(&[reorder, 0])));
    }
    if i.rate.is_some() {
        let bytes = i.rate_bytes();
        if bytes >= 1 << 32 {
            out.extend(nla(TCA_NETEM_RATE64, &bytes.to_ne_bytes()));
        }
        // struct tc_netem_rate: rate, packet_overhead, cell_size, cell_overhead.
        out.extend(nla(TCA_NETEM_RATE, &u32s(&[bytes.min(u64::from(u32::MAX)) as u32, 0, 0, 0])));
    }
    out
}

/// struct tc_ratespec: cell_log, linklayer, overhead, cell_align, mpu, rate.
fn ratespec(rate_bytes: u64) -> Vec<u8> {
    let mut spec = vec![0u8, TC_LINKLAYER_ETHERNET];
    spec.extend([0u16.to_ne_bytes(), 0i16.to_ne_bytes(), 0u16.to_ne_bytes()].concat());
    spec.extend((rate_bytes.min(u64::from(u32::MAX)) as u32).to_ne_bytes());
    spec
}

/// tbf's TCA_OPTIONS: TCA_TBF_PARMS (struct tc_tbf_qopt: rate, peak rate, limit,
/// buffer, mtu), TCA_TBF_BURST (the kernel computes the buffer from it), and
/// TCA_TBF_RATE64 above 32 bits of bytes per second.
fn tbf_options(i: &Impairment) -> Vec<TcOption> {
    let rate = i.rate_bytes();
    let burst = i.tbf_burst();
    let mut parms = ratespec(rate);
    parms.extend([0u8; 12]); // no peak rate
    let buffer = crate::model::impair::tbf_buffer_ticks(rate, burst);
    parms.extend(u32s(&[i.tbf_limit(), buffer, 0]));
    let mut options = vec![
        TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, parms)),
        TcOption::Other(DefaultNla::new(TCA_TBF_BURST, burst.to_ne_bytes().to_vec())),
    ];
    if rate >= 1 << 32 {
        options.push(TcOption::Other(DefaultNla::new(TCA_TBF_RATE64, rate.to_ne_bytes().to_vec())));
    }
    options
}

/// The attributes of a netlink payload, (kind, value).
fn attributes(mut bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & 0x3fff;
        if len < 4 || len > bytes.len() {
            break;
        }
        out.push((kind, &bytes[4..len]));
        bytes = &bytes[((len + 3) & !3).min(bytes.len())..];
    }
    out
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    bytes.get(offset..offset + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0)
}

fn u64_of(bytes: &[u8]) -> u64 {
    bytes.get(..8).map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes"))).unwrap_or(0)
}

/// The raw TCA_OPTIONS payload of a dumped qdisc (rtnetlink keeps the options of
/// kinds it does not know as one attribute).
fn options_payload(msg: &TcMessage) -> Option<Vec<u8>> {
    msg.attributes.iter().find_map(|a| match a {
        TcAttribute::Options(opts) => opts.iter().find_map(|o| match o {
            TcOption::Other(nla) if nla.kind() == TCA_OPTIONS => {
                let mut value = vec![0u8; nla.value_len()];
                nla.emit_value(&mut value);
                Some(value)
            }
            _ => None,
        }),
        TcAttribute::Other(nla) if nla.kind() == TCA_OPTIONS => {
            let mut value = vec![0u8; nla.value_len()];
            nla.emit_value(&mut value);
            Some(value)
        }
        _ => None,
    })
}

/// The parameters of a netem or tbf qdisc, read as `tc qdisc show` reads them.
fn params(kind: &str, payload: Option<&[u8]>) -> QdiscParams {
    let Some(payload) = payload else { return QdiscParams::Other };
    match kind {
        "netem" if payload.len() >= NETEM_QOPT_LEN => {
            let (mut delay, mut jitter, mut reorder, mut rate, mut rate64) = (0, 0, 0, 0, None);
            for (k, v) in attributes(&payload[NETEM_QOPT_LEN..]) {
                match k {
                    TCA_NETEM_LATENCY64 => delay = u64_of(v),
                    TCA_NETEM_JITTER64 => jitter = u64_of(v),
                    TCA_NETEM_REORDER => reorder = u32_at(v, 0),
                    TCA_NETEM_RATE => rate = u64::from(u32_at(v, 0)),
                    TCA_NETEM_RATE64 => rate64 = Some(u64_of(v)),
                    _ => {}
                }
            }
            QdiscParams::Netem {
                delay_ns: delay,
                jitter_ns: jitter,
                loss: u32_at(payload, 8),
                duplicate: u32_at(payload, 16),
                reorder,
                rate_bytes: rate64.unwrap_or(rate),
                limit: u32_at(payload, 4),
            }
        }
        "tbf" => {
            let attrs = attributes(payload);
            let Some((_, parms)) = attrs.iter().find(|(k, _)| *k == TCA_TBF_PARMS) else {
                return QdiscParams::Other;
            };
            let rate64 = attrs.iter().find(|(k, _)| *k == TCA_TBF_RATE64).map(|(_, v)| u64_of(v));
            QdiscParams::Tbf {
                rate_bytes: rate64.unwrap_or(u64::from(u32_at(parms, 8))),
                limit: u32_at(parms, 24),
                buffer_ticks: u32_at(parms, 28),
            }
        }
        _ => QdiscParams::Other,
    }
}

impl Node {
    /// Sends a qdisc request and reads the kernel's answer.
    async fn qdisc_request(&self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let handle = self.handle().map_err(|e| io::Error::other(e.to_string()))?;
        let mut replies = handle.clone().request(req).map_err(nl_to_io)?;
        while let Some(reply) = replies.next().await {
            if let NetlinkPayload::Error(e) = reply.payload {
                if let Some(code) = e.code {
                    return Err(io::Error::from_raw_os_error(-code.get()));
                }
            }
        }
        Ok(())
    }

    /// `tc qdisc replace dev LINK root netem ...` (or `tbf ...`).
    pub async fn impair(&self, link: &LinkName, impairment: &Impairment) -> Result<()> {
        let (index, _) = self.link_index(link).await?;
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.parent = TcHandle::ROOT;
        msg.attributes.push(TcAttribute::Kind(impairment.kind().to_string()));
        if impairment.uses_netem() {
            msg.attributes.push(TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, netem_options(impairment))));
        } else {
            msg.attributes.push(TcAttribute::Options(tbf_options(impairment)));
        }
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        match self.qdisc_request(RouteNetlinkMessage::NewQueueDiscipline(msg), flags).await {
            Ok(()) => Ok(()),
            // "Specified qdisc kind is unknown": the kernel has no such qdisc.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EOPNOTSUPP)) => {
                let what = format!("a {} qdisc on {link}", impairment.kind());
                Err(Error::missing_feature(impairment.feature(), self.name.as_str(), &what))
            }
            Err(e) => Err(Error::kernel("impairing", self.name.as_str(), link.as_str(), e)),
        }
    }

    /// `tc qdisc del dev LINK root`.
    pub async fn clear_impair(&self, link: &LinkName) -> Result<()> {
        let (index, _) = self.link_index(link).await?;
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.parent = TcHandle::ROOT;
        match self.qdisc_request(RouteNetlinkMessage::DelQueueDiscipline(msg), NLM_F_REQUEST | NLM_F_ACK).await {
            Ok(()) => Ok(()),
            // "Cannot delete qdisc with handle of zero": only the kernel's default is there.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL)) => {
                Err(crate::model::impair::nothing_to_clear(self.name.as_str(), link.as_str()))
            }
            Err(e) => Err(Error::kernel("removing the impairment of", self.name.as_str(), link.as_str(), e)),
        }
    }

    /// `tc qdisc show`: the qdiscs configured in the node, by link then parent; the
    /// kernel's own defaults (noqueue, noop, pfifo_fast... with handle 0) left out.
    pub async fn qdiscs(&self) -> Result<Vec<QdiscState>> {
        let links = self.links().await?;
        let name_of = |index: i32| {
            links.iter().find(|l| l.index as i32 == index).map(|l| l.name.clone()).unwrap_or(format!("if{index}"))
        };
        let msgs: Vec<TcMessage> = self
            .handle()?
            .qdisc()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::kernel("listing qdiscs", self.name.as_str(), "", nl_to_io(e)))?;
        let mut out: Vec<(i32, QdiscState)> = msgs
            .iter()
            .filter(|m| m.header.handle.major != 0)
            .map(|m| {
                let kind = m
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        TcAttribute::Kind(k) => Some(k.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let payload = options_payload(m);
                let state = QdiscState {
                    dev: name_of(m.header.index),
                    params: params(&kind, payload.as_deref()),
                    kind,
                    root: m.header.parent == TcHandle::ROOT,
                };
                (m.header.index, state)
            })
            .collect();
        out.sort_by_key(|(index, q)| (*index, !q.root));
        Ok(out.into_iter().map(|(_, q)| q).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_options_read_back() {
        let i = Impairment {
            delay: Some(100_000_000),
            jitter: Some(5_000_000),
            loss: Some(1.0),
            reorder: Some(25.0),
            rate: Some(10_000_000),
            ..Default::default()
        };
        let payload = netem_options(&i);
        assert_eq!(params("netem", Some(&payload)), i.state("x").params);
        let tbf = Impairment { rate: Some(10_000_000), ..Default::default() };
        let TcOption::Other(parms) = &tbf_options(&tbf)[0] else { panic!() };
        assert_eq!(parms.value_len(), 36, "struct tc_tbf_qopt");
        let mut nested = Vec::new();
        for o in tbf_options(&tbf) {
            let mut v = vec![0u8; o.value_len()];
            o.emit_value(&mut v);
            nested.extend(nla(o.kind(), &v));
        }
        assert_eq!(params("tbf", Some(&nested)), tbf.state("x").params);
    }
}
