//! The VM's own network, as the machine daemon's user-mode stack (passt) and the guest's
//! PID 1 both configure it. The addresses are private to the VM: passt translates the guest's
//! traffic to ordinary sockets of the host, so nothing of this range appears on the host.

use std::net::Ipv4Addr;

/// The guest's address on its virtio-net interface.
pub const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 65, 3);
/// The gateway, which passt maps to the host's loopback: `host.docker.internal`.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 65, 1);
/// DNS queries to this address go to the host's resolver.
pub const DNS: Ipv4Addr = Ipv4Addr::new(192, 168, 65, 1);
pub const PREFIX_LEN: u8 = 24;
/// The guest's interface (the only virtio-net device).
pub const IFACE: &str = "eth0";
/// Set by PID 1 for the engines: the address containers reach the host at.
pub const HOST_GATEWAY_ENV: &str = "SKIFF_HOST_GATEWAY";
