//! Applying a node's NAT and forwarding rules: one `nft -f -` inside the node; and
//! reading every rule of the node back from the kernel.

use std::time::Duration;

use super::Lab;
use crate::error::{Error, Result};
use crate::exec::{self, CommandLine};
use crate::firewall::Firewall;
use crate::iptables::{IptTable, Ruleset};
use crate::node::Node;

impl Lab {
    /// Changes the node's rules with `change`, then applies the whole ruleset. On
    /// failure the rules are left as they were.
    pub fn update_firewall(&self, node: &Node, change: impl FnOnce(&mut Firewall)) -> Result<()> {
        let mut next = node.firewall.borrow().clone();
        change(&mut next);
        let text = next.render_nft();
        self.nft(node, "nft -f -", Some(text.as_bytes()), "applying nftables rules", "netlab's tables")?;
        *node.firewall.borrow_mut() = next;
        self.mark_changed();
        Ok(())
    }

    /// `nft list ruleset` inside the node: the kernel's real rules.
    pub fn nft_ruleset(&self, node: &Node) -> Result<String> {
        self.nft(node, "nft list ruleset", None, "listing nftables rules", "ruleset")
    }

    /// The node's rules for `table` as `iptables -t TABLE -S` prints them, read from
    /// the kernel: every IPv4 rule in the node, not only netlab's (crate::iptables).
    /// Rules iptables-nft made with xtables extensions are taken from its own
    /// listing, read only when there are any.
    pub fn iptables_rules(&self, node: &Node, table: IptTable) -> Result<Vec<String>> {
        let json = self.nft(node, "nft -j list ruleset", None, "listing nftables rules", "ruleset")?;
        let ruleset = Ruleset::parse(&json).map_err(|e| {
            Error::kernel("reading nftables rules", node.name.as_str(), "ruleset", std::io::Error::other(e))
        })?;
        let listing = if ruleset.needs_iptables_listing(table) {
            let line = format!("iptables-nft -t {} -S", table.name());
            Some(self.nft(node, &line, None, "listing iptables rules", table.name())?)
        } else {
            None
        };
        Ok(ruleset.iptables_lines(table, listing.as_deref()))
    }

    /// Runs an nft (or iptables-nft) command line in the node; its stdout, or nft's own complaint as
    /// the error.
    fn nft(&self, node: &Node, line: &str, input: Option<&[u8]>, op: &'static str, object: &str) -> Result<String> {
        let cmd = CommandLine::parse(line).map_err(|e| Error::io(line.to_string(), std::io::Error::other(e)))?;
        let binds = self.bind_mounts(node);
        let timeout = self.deadline(10.0).max(Duration::from_secs(10));
        let out = self.block_on(exec::exec_in(node, &cmd, &binds, input, timeout))?;
        if out.code != Some(0) {
            let why = std::io::Error::other(out.stderr.trim().to_string());
            return Err(Error::kernel(op, node.name.as_str(), object, why));
        }
        Ok(out.stdout)
    }
}
