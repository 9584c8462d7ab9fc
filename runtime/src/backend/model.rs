//! The model backend: applies ops to a `Topology`, answers queries from it, and
//! records probes instead of making them. Needs no root and no kernel.
