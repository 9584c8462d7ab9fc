//! The model's network: ops folded into nodes, links, addresses, routes, rules
//! and files, validated as the kernel would.

/// The lab's network as the ops built it.
#[derive(Debug, Default, Clone)]
pub struct Topology {}
