//! Placeholder until the ip renderer lands.
use crate::model::{Op, Probe};

pub fn op_commands(op: &Op, _host: &str) -> Vec<String> {
    vec![format!("{op:?}")]
}

pub fn probe_commands(probe: &Probe, _host: &str) -> Vec<String> {
    vec![format!("{probe:?}")]
}
