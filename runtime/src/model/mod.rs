//! The lab as data: names, the ops a lab applies, the probes it makes, and the
//! typed state a node holds. No kernel in here.

pub mod feature;
pub mod firewall;
pub mod impair;
pub mod link;
pub mod op;
pub mod programs;
pub mod state;
pub mod topology;

pub use feature::Feature;
pub use impair::{Impairment, QdiscParams, QdiscState};
pub use link::{parse_wg_key, wg_key_text, wg_lab_key, wg_public_key};
pub use link::{
    BondMode, BondSpec, BridgeConf, BridgeOpts, BridgeVlan, LinkAttrs, LinkSpec, MacvlanMode, VxlanSpec, WgConfig,
    WgKey, WgPeer, WgPeerState, WgState,
};
pub use op::{Entry, EtcFile, Expect, Op, Probe, RouterAdvert, ServerSpec};
pub use programs::ops_of;
pub use state::{
    AddrFlags, AddrState, BridgePortOpts, FdbEntry, FdbState, HopState, LinkDetails, LinkKind, LinkState, NeighState,
    Neighbour, NextHop, OperState, PathHop, PortState, RouteKind, RouteOpts, RouteState, RuleSpec, RuleState, Scope,
    MAIN_TABLE,
};
pub use topology::{Link, Lint, LintKind, NodeState, Route, Topology};
