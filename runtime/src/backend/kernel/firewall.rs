//! Applying a node's NAT and forwarding rules (`iptables-restore --noflush` inside
//! the node, and netlab's bridge table with `nft -f -`); and reading every rule of
//! the node back from the kernel.

use std::time::Duration;

use super::Lab;
use crate::backend::kernel::exec::{self, CommandLine};
use crate::backend::kernel::node::Node;
use crate::error::{Error, Result};
use crate::model::firewall::{FirewallChange, RuleFile};
use crate::render::iptables::{IptTable, Ruleset};

impl Lab {
    /// Applies one change to the node's firewall, as the tutorial's iptables command
    /// would (appended to iptables' own tables), and keeps netlab's bridge table in
    /// step with the FORWARD policy. Each family's change is one transaction.
    pub fn apply_firewall(&self, node: &Node, change: &FirewallChange) -> Result<()> {
        if let FirewallChange::File(file) = change {
            return self.load_rule_file(node, file);
        }
        let input = change.restore_input();
        for (tool, text) in [("iptables-restore", &input.v4), ("ip6tables-restore", &input.v6)] {
            if let Some(text) = text {
                let line = format!("{tool} --noflush");
                self.nft(node, &line, Some(text.as_bytes()), "applying iptables rules", text.trim())?;
            }
        }
        let next = change.apply_to(&node.bridge_filter.borrow());
        if let Some(next) = next {
            // With br_netfilter active, bridged frames meet iptables' FORWARD chain
            // itself, as in the tutorials; netlab's bridge table only stands in for it.
            if !self.bridged_traffic_meets_iptables(node) {
                let text = next.render_nft();
                self.nft(node, "nft -f -", Some(text.as_bytes()), "applying nftables rules", "netlab's bridge table")?;
            }
            *node.bridge_filter.borrow_mut() = next;
        }
        self.mark_changed();
        Ok(())
    }

    /// `nft -f FILE` or `iptables-restore < FILE` in the node, the file on standard
    /// input; the tool's complaint names the file as the lab does.
    fn load_rule_file(&self, node: &Node, file: &RuleFile) -> Result<()> {
        let cmd = CommandLine::parse(file.kind.stdin_command())?;
        let binds = self.bind_mounts(node);
        let timeout = self.deadline(10.0).max(Duration::from_secs(10));
        let run = exec::exec_in(node, &cmd, &binds, Some(file.text.as_bytes()), timeout);
        let out = self.block_on(crate::interrupt::unless_interrupted(run))??;
        self.mark_changed();
        if out.code != Some(0) {
            // nft says "/dev/stdin:3:1-4: Error: ...", iptables-restore "line 3 failed".
            let said = out.stderr.trim().replace("/dev/stdin", &file.name);
            let why = std::io::Error::other(format!("{} said: {said}", file.kind.program()));
            return Err(Error::kernel("loading rule file", node.name.as_str(), file.name.clone(), why));
        }
        Ok(())
    }

    /// Whether br_netfilter passes the node's bridged IPv4 and IPv6 frames through
    /// iptables (`net.bridge.bridge-nf-call-ip{,6}tables` = 1; the keys exist only
    /// while the module is loaded).
    fn bridged_traffic_meets_iptables(&self, node: &Node) -> bool {
        ["net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"]
            .iter()
            .all(|key| self.get_sysctl(node, key).is_ok_and(|v| v.trim() == "1"))
    }

    /// `nft list ruleset` inside the node: the kernel's real rules.
    pub fn nft_ruleset(&self, node: &Node) -> Result<String> {
        self.nft(node, "nft list ruleset", None, "listing nftables rules", "ruleset")
    }

    /// The node's rules for `table` as `iptables -t TABLE -S` prints them, read from
    /// the kernel: every IPv4 rule in the node, not only netlab's (crate::render::iptables).
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
        let cmd = CommandLine::parse(line)?;
        let binds = self.bind_mounts(node);
        let timeout = self.deadline(10.0).max(Duration::from_secs(10));
        let out =
            self.block_on(crate::interrupt::unless_interrupted(exec::exec_in(node, &cmd, &binds, input, timeout)))??;
        if out.code != Some(0) {
            let why = std::io::Error::other(out.stderr.trim().to_string());
            return Err(Error::kernel(op, node.name.as_str(), object, why));
        }
        out.whole_stdout(node.name.as_str(), line)
    }
}
