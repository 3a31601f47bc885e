//! What the CLI and the agent share: docker's way of writing sizes and durations, and the
//! vsock ports and the network addresses of the VM.

pub mod auth;
pub mod dockerignore;
pub mod gopath;
pub mod gostr;
pub mod ids;
pub mod mirror;
pub mod relay;
pub mod shares;
pub mod targuard;
pub mod time;
pub mod units;
pub mod vmnet;
pub mod vsock;
