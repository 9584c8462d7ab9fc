//! Rendering the lab for readers: pictures of its topology.

pub mod graph;
