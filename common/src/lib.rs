//! What the CLI and the agent share: docker's way of writing sizes and durations, and the
//! vsock ports of the VM.

pub mod units;
pub mod vsock;
