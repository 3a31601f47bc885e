//! PLACEHOLDER until the forwarder lands (helper is writing it).
use std::net::SocketAddr;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Proto {
    Tcp,
    Udp,
}
impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}
pub struct Bound {
    addr: SocketAddr,
    proto: Proto,
    _l: Option<std::net::TcpListener>,
    _u: Option<std::net::UdpSocket>,
}
impl Bound {
    pub fn bind(proto: Proto, addr: SocketAddr) -> std::io::Result<Bound> {
        match proto {
            Proto::Tcp => {
                let l = std::net::TcpListener::bind(addr)?;
                Ok(Bound {
                    addr: l.local_addr()?,
                    proto,
                    _l: Some(l),
                    _u: None,
                })
            }
            Proto::Udp => {
                let u = std::net::UdpSocket::bind(addr)?;
                Ok(Bound {
                    addr: u.local_addr()?,
                    proto,
                    _l: None,
                    _u: Some(u),
                })
            }
        }
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn proto(&self) -> Proto {
        self.proto
    }
    pub fn serve(self, _target: SocketAddr) -> Forward {
        Forward {
            addr: self.addr,
            _b: self,
        }
    }
}
pub struct Forward {
    addr: SocketAddr,
    _b: Bound,
}
impl Forward {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn active(&self) -> usize {
        0
    }
}
