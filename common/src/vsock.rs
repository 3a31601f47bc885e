//! The vsock ports the VM's agent and the host's machine daemon agree on.
//!
//! The host is CID 2 for the guest, as on every virtio-vsock transport; the guest's CID is
//! the machine's and only the host side needs it.

/// The Docker Engine API, served by the agent (host connects).
pub const API_PORT: u32 = 1024;
/// Published-port connections, one vsock stream per forwarded connection (host connects).
pub const FORWARD_PORT: u32 = 1025;
/// Publish and unpublish requests from the agent to the daemon (guest connects).
pub const CONTROL_PORT: u32 = 1026;
/// The guest's way out: an HTTP proxy served by the daemon on the host (guest connects).
pub const EGRESS_PORT: u32 = 1027;
/// PID 1's own control: `shutdown` (host connects).
pub const INIT_PORT: u32 = 1028;
/// Echoes every byte back: measures the vsock device alone (`scripts/bench-vm.sh`).
pub const ECHO_PORT: u32 = 1029;
/// The CID every guest sees its host at.
pub const HOST_CID: u32 = 2;
