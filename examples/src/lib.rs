//! Shared code of the foca examples: the simulator scenarios that the
//! `simulate` example runs and that `foca-tests` asserts on, and what the
//! command-line UDP agents on tokio and on async-std share.
//!
//! This crate is in the public domain (CC0-1.0).

pub mod scenario;
pub mod udp_agent;
