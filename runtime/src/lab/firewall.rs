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
        let out = self.run_tool(node, "nft -f -", Some(text.as_bytes()))?;
        if out.code != Some(0) {
            return Err(Error::kernel(
                "applying nftables rules",
                node.name.as_str(),
                "netlab's tables",
                std::io::Error::other(out.stderr.trim().to_string()),
            ));
        }
        *node.firewall.borrow_mut() = next;
        self.mark_changed();
        Ok(())
    }

    /// `nft list ruleset` inside the node: the kernel's real rules.
    pub fn nft_ruleset(&self, node: &Node) -> Result<String> {
        let out = self.run_tool(node, "nft list ruleset", None)?;
        if out.code != Some(0) {
            return Err(Error::kernel(
                "listing nftables rules",
                node.name.as_str(),
                "ruleset",
                std::io::Error::other(out.stderr.trim().to_string()),
            ));
        }
        Ok(out.stdout)
    }

    fn run_tool(&self, node: &Node, line: &str, input: Option<&[u8]>) -> Result<exec::ExecOutput> {
        let cmd = CommandLine::parse(line).map_err(|e| Error::io(line.to_string(), std::io::Error::other(e)))?;
        let binds = self.bind_mounts(node);
        self.block_on(exec::exec_in(node, &cmd, &binds, input, self.deadline(10.0).max(Duration::from_secs(10))))
    }
}
