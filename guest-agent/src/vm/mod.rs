//! The agent inside skiff's VM: PID 1's duties, and the vsock services the host talks to.

pub mod clock;
pub mod engines;
pub mod init;
pub mod layout;
pub mod netif;
pub mod ports;
pub mod reclaim;
pub mod shares;
pub mod vsock;
