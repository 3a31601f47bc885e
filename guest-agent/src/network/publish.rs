//! Where a published port's host socket lives: in this process when the agent runs natively,
//! or with the machine daemon on the host when the agent runs in skiff's VM. The engine picks
//! one `Publisher` when it starts and hands it to `Networks`; callers bind and serve the same
//! way in both cases, and nothing here knows how the VM's side works (`vm/ports.rs`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::proxy::{self, Proto};

/// Host ports held by someone else on our behalf (the machine daemon, for the VM).
pub trait RemotePorts: Send + Sync {
    /// Ask for `addr` (port 0: the holder's choice); the reservation says what was bound.
    fn reserve(&self, proto: Proto, addr: SocketAddr) -> io::Result<Box<dyn Reservation>>;
}

/// A remote host port, not serving yet; dropping it gives the port back.
pub trait Reservation: Send {
    fn local_addr(&self) -> SocketAddr;
    fn proto(&self) -> Proto;
    /// Forward what arrives on the port to `target`.
    fn serve(self: Box<Self>, target: SocketAddr) -> Box<dyn RemoteForward>;
}

/// A remote host port being served; dropping it gives the port back.
pub trait RemoteForward: Send + Sync {
    fn local_addr(&self) -> SocketAddr;
}

/// Who holds published ports' host sockets.
#[derive(Clone, Default)]
pub enum Publisher {
    /// This process (the agent on a Linux host).
    #[default]
    Local,
    Remote(Arc<dyn RemotePorts>),
}

impl Publisher {
    pub fn is_remote(&self) -> bool {
        matches!(self, Publisher::Remote(_))
    }

    pub fn bind(&self, proto: Proto, addr: SocketAddr) -> io::Result<Listener> {
        match self {
            Publisher::Remote(r) => r.reserve(proto, addr).map(Listener::Remote),
            Publisher::Local => proxy::Bound::bind(proto, addr).map(Listener::Local),
        }
    }
}

pub enum Listener {
    Local(proxy::Bound),
    Remote(Box<dyn Reservation>),
}

impl Listener {
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
    Remote(Box<dyn RemoteForward>),
}

impl Served {
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Served::Local(f) => f.local_addr(),
            Served::Remote(f) => f.local_addr(),
        }
    }
}

#[cfg(test)]
pub mod fake {
    //! Remote ports in memory: what was reserved, served and given back.

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct FakeRemote {
        /// host address → the container address it serves (None: reserved only).
        pub held: Arc<Mutex<BTreeMap<SocketAddr, Option<SocketAddr>>>>,
        next: Mutex<u16>,
    }

    type Map = Arc<Mutex<BTreeMap<SocketAddr, Option<SocketAddr>>>>;
    struct Reserved(SocketAddr, Proto, Map);
    struct Forward(SocketAddr, Map);

    impl RemotePorts for FakeRemote {
        fn reserve(&self, proto: Proto, addr: SocketAddr) -> io::Result<Box<dyn Reservation>> {
            let mut addr = addr;
            if addr.port() == 0 {
                let mut next = self.next.lock().unwrap();
                *next += 1;
                addr.set_port(40000 + *next);
            }
            let mut held = self.held.lock().unwrap();
            if held.contains_key(&addr) {
                return Err(io::ErrorKind::AddrInUse.into());
            }
            held.insert(addr, None);
            Ok(Box::new(Reserved(addr, proto, self.held.clone())))
        }
    }

    impl Reservation for Reserved {
        fn local_addr(&self) -> SocketAddr {
            self.0
        }
        fn proto(&self) -> Proto {
            self.1
        }
        fn serve(self: Box<Self>, target: SocketAddr) -> Box<dyn RemoteForward> {
            self.2.lock().unwrap().insert(self.0, Some(target));
            Box::new(Forward(self.0, self.2.clone()))
        }
    }

    /// A reservation given up before it served gives its port back.
    impl Drop for Reserved {
        fn drop(&mut self) {
            let mut held = self.2.lock().unwrap();
            if held.get(&self.0) == Some(&None) {
                held.remove(&self.0);
            }
        }
    }

    impl RemoteForward for Forward {
        fn local_addr(&self) -> SocketAddr {
            self.0
        }
    }

    impl Drop for Forward {
        fn drop(&mut self) {
            self.1.lock().unwrap().remove(&self.0);
        }
    }
}
