//! Renderers: the lab's ops, probes and journal as text for people and shells.

pub mod bash;
pub mod ip;
