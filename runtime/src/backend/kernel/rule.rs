//! Policy routing rules: `ip rule add ...` and `ip rule` listing.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::IpVersion;

use crate::backend::kernel::node::Node;
use crate::error::{nl_to_io, Error, Result};
use crate::model::{RuleSpec, RuleState};

impl Node {
    /// `ip rule add [from P] [to P] [iif L] [oif L] [fwmark N] [priority N] table T`.
    pub async fn add_rule(&self, rule: &RuleSpec) -> Result<()> {
        let mut req = self.handle()?.rule().add().table_id(rule.table).action(RuleAction::ToTable);
        if let Some(p) = rule.priority {
            req = req.priority(p);
        }
        if let Some(mark) = rule.fwmark {
            req = req.fw_mark(mark);
        }
        let msg = req.message_mut();
        msg.header.family = if rule.v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
        if let Some(from) = rule.from {
            msg.header.src_len = from.prefix_len();
            msg.attributes.push(RuleAttribute::Source(from.addr()));
        }
        if let Some(to) = rule.to {
            msg.header.dst_len = to.prefix_len();
            msg.attributes.push(RuleAttribute::Destination(to.addr()));
        }
        if let Some(iif) = &rule.iif {
            msg.attributes.push(RuleAttribute::Iifname(iif.to_string()));
        }
        if let Some(oif) = &rule.oif {
            msg.attributes.push(RuleAttribute::Oifname(oif.to_string()));
        }
        req.execute()
            .await
            .map_err(|e| Error::kernel("adding rule", self.name.as_str(), describe_rule(rule), nl_to_io(e)))
    }

    /// `ip rule del ...`: the first rule of the family that has what is given (a
    /// priority left out matches any); ENOENT for none.
    pub async fn delete_rule(&self, rule: &RuleSpec) -> Result<()> {
        let version = if rule.v6 { IpVersion::V6 } else { IpVersion::V4 };
        let found = self.rule_messages(version).await?.into_iter().find(|m| rule_matches(&rule_state(m), rule));
        let what = describe_rule(rule);
        let Some(msg) = found else {
            return Err(Error::kernel(
                "deleting rule",
                self.name.as_str(),
                what,
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        };
        self.handle()?
            .rule()
            .del(msg)
            .execute()
            .await
            .map_err(|e| Error::kernel("deleting rule", self.name.as_str(), what, nl_to_io(e)))
    }

    /// `ip rule` and `ip -6 rule`, IPv4 first, each by priority.
    pub async fn rules(&self) -> Result<Vec<RuleState>> {
        let mut all = Vec::new();
        for version in [IpVersion::V4, IpVersion::V6] {
            all.extend(self.rule_messages(version).await?.iter().map(rule_state));
        }
        Ok(all)
    }

    /// The kernel's dump of one family's rules.
    async fn rule_messages(&self, version: IpVersion) -> Result<Vec<RuleMessage>> {
        self.handle()?
            .rule()
            .get(version)
            .execute()
            .try_collect()
            .await
            .map_err(|e| Error::kernel("listing rules", self.name.as_str(), "", nl_to_io(e)))
    }
}

/// Whether `state` is the rule `ip rule del` with `wanted`'s selectors deletes.
pub fn rule_matches(state: &RuleState, wanted: &RuleSpec) -> bool {
    state.v6 == wanted.v6
        && state.from == wanted.from
        && state.to == wanted.to
        && state.iif.as_deref() == wanted.iif.as_ref().map(|l| l.as_str())
        && state.oif.as_deref() == wanted.oif.as_ref().map(|l| l.as_str())
        && state.fwmark == wanted.fwmark
        && state.table == wanted.table
        && wanted.priority.is_none_or(|p| p == state.priority)
}

/// "from 10.1.0.0/24 table 100", for messages.
pub(crate) fn describe_rule(rule: &RuleSpec) -> String {
    let mut words = Vec::new();
    if let Some(from) = rule.from {
        words.push(format!("from {from}"));
    }
    if let Some(to) = rule.to {
        words.push(format!("to {to}"));
    }
    if let Some(iif) = &rule.iif {
        words.push(format!("iif {iif}"));
    }
    if let Some(oif) = &rule.oif {
        words.push(format!("oif {oif}"));
    }
    if let Some(mark) = rule.fwmark {
        words.push(format!("fwmark {mark:#x}"));
    }
    if let Some(p) = rule.priority {
        words.push(format!("priority {p}"));
    }
    words.push(format!("table {}", rule.table));
    words.join(" ")
}

fn rule_state(msg: &RuleMessage) -> RuleState {
    let prefix = |ip: &IpAddr, len: u8| IpNet::new(*ip, len).ok();
    let mut state = RuleState {
        v6: msg.header.family == AddressFamily::Inet6,
        priority: 0,
        from: None,
        to: None,
        iif: None,
        oif: None,
        fwmark: None,
        table: u32::from(msg.header.table),
    };
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => state.priority = *p,
            RuleAttribute::Source(ip) => state.from = prefix(ip, msg.header.src_len),
            RuleAttribute::Destination(ip) => state.to = prefix(ip, msg.header.dst_len),
            RuleAttribute::Iifname(n) => state.iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => state.oif = Some(n.clone()),
            RuleAttribute::FwMark(m) => state.fwmark = Some(*m),
            RuleAttribute::Table(t) => state.table = *t,
            _ => {}
        }
    }
    state
}
