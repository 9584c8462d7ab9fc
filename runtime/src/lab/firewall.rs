//! Applying a node's NAT and forwarding rules: one `nft -f -` inside the node.

use std::time::Duration;

use super::Lab;
use crate::error::{Error, Result};
use crate::exec::{self, CommandLine};
use crate::firewall::Firewall;
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

    /// Runs an nft command line in the node; its stdout, or nft's own complaint as
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
