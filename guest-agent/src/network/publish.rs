//! Where a published port's host socket lives: in this process when the agent runs natively,
//! or with the machine daemon on the host when the agent runs in skiff's VM. Callers bind and
//! serve the same way in both cases.

use std::io;
use std::net::SocketAddr;

use super::proxy::{self, Proto};
use crate::vm::ports::{self as remote, RemoteForward, Reservation};

pub enum Listener {
    Local(proxy::Bound),
    Remote(Reservation),
}

impl Listener {
    pub fn bind(proto: Proto, addr: SocketAddr) -> io::Result<Listener> {
        match remote::remote() {
            Some(r) => r.reserve(proto, addr).map(Listener::Remote),
            None => proxy::Bound::bind(proto, addr).map(Listener::Local),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Listener::Local(b) => b.local_addr(),
            Listener::Remote(r) => r.local_addr(),
        }
    }

    pub fn proto(&self) -> Proto {
        match self {
            Listener::Local(b) => b.proto(),
            Listener::Remote(r) => r.proto(),
        }
    }

    /// Start forwarding to `target`. Must be called inside a tokio runtime.
    pub fn serve(self, target: SocketAddr) -> Served {
        match self {
            Listener::Local(b) => Served::Local(b.serve(target)),
            Listener::Remote(r) => Served::Remote(r.serve(target)),
        }
    }
}

/// A published port being served; dropping it closes the port.
pub enum Served {
    Local(proxy::Forward),
    Remote(RemoteForward),
}

impl Served {
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Served::Local(f) => f.local_addr(),
            Served::Remote(f) => f.local_addr(),
        }
    }
}
