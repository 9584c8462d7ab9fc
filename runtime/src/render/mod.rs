//! Renderers: what the lab did, in other words.

pub mod ip;
