//! The lab as data: names, the ops a lab applies, the probes it makes, and the
//! typed state a node holds. No kernel in here.

pub mod feature;
pub mod firewall;
pub mod link;
pub mod op;
pub mod programs;
pub mod state;
pub mod topology;

pub use feature::Feature;
pub use link::{LinkAttrs, LinkSpec, MacvlanMode, VxlanSpec};
pub use op::{Entry, EtcFile, Expect, Op, Probe, RouterAdvert, ServerSpec};
pub use programs::ops_of;
pub use state::{
    AddrFlags, AddrState, BridgePortOpts, FdbEntry, FdbState, LinkDetails, LinkKind, LinkState, NeighState, Neighbour,
    NextHop, OperState, PortState, RouteKind, RouteOpts, RouteState, RuleSpec, RuleState, Scope, MAIN_TABLE,
};
pub use topology::{Link, Lint, LintKind, NodeState, Route, Topology};
