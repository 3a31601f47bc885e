//! virtio-vsock: a guest's AF_VSOCK stream sockets as unix sockets on the host.
//!
//! - [`VsockDevice`] is the device proper (connections, flow control, host sockets, RX/TX
//!   queues) and knows nothing of how the queues reach the guest.
//! - [`vhost_user`] serves it to QEMU's `vhost-user-vsock-device`.
//!
//! The host side follows Firecracker's hybrid convention; see [`VsockConfig::uds_path`].

mod conn;
mod credit;
mod device;
mod host;
mod packet;
mod proto;
pub mod vhost_user;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use device::{DeviceError, VsockDevice, EVENT_QUEUE, NUM_QUEUES, RX_QUEUE, TX_QUEUE};
pub use vhost_user::{serve_vhost_user, VhostUserVsock};

#[derive(Clone, Debug)]
pub struct VsockConfig {
    /// The guest's context ID (3 or more).
    pub guest_cid: u64,
    /// Host processes connect here and write `CONNECT <port>\n` to reach guest port `<port>`;
    /// they read `OK <local port>\n` once the guest accepted. A guest connecting to host port P
    /// reaches whoever listens on `<uds_path>_P`.
    pub uds_path: PathBuf,
}
