//! Renderers: the lab's ops, probes, journal and topology as text for people, shells and graph tools.

pub mod bash;
pub mod graph;
pub mod ip;
pub mod iptables;
