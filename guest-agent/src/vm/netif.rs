//! The VM's own interfaces, set up by PID 1 with plain ioctls: this runs before (and without)
//! the async runtime the engine's netlink code needs, and four ioctls are all it takes.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

/// struct ifreq: the interface name, then a union of which we use a sockaddr or the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> Result<IfReq> {
        let mut r = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        anyhow::ensure!(
            name.len() < libc::IFNAMSIZ,
            "interface name {name:?} too long"
        );
        r.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(r)
    }

    fn set_addr(&mut self, a: Ipv4Addr) {
        let sa = sockaddr(a);
        // SAFETY: sockaddr_in is 16 bytes of plain data and fits the 24-byte union.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                &sa as *const libc::sockaddr_in as *const u8,
                std::mem::size_of::<libc::sockaddr_in>(),
            )
        };
        self.data[..bytes.len()].copy_from_slice(bytes);
    }
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn control_socket() -> Result<OwnedFd> {
    // SAFETY: socket() has no memory preconditions; the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("creating a socket for ioctls");
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl<T>(sock: &OwnedFd, request: libc::Ioctl, arg: &mut T, what: &str) -> Result<()> {
    // SAFETY: every request used here takes a pointer to the struct we pass, which lives
    // across the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), request, arg as *mut T) } < 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

/// Bring `name` up.
pub fn up(name: &str) -> Result<()> {
    let sock = control_socket()?;
    let mut req = IfReq::new(name)?;
    ioctl(&sock, libc::SIOCGIFFLAGS, &mut req, "reading the flags")?;
    let mut flags = i16::from_ne_bytes([req.data[0], req.data[1]]);
    flags |= (libc::IFF_UP | libc::IFF_RUNNING) as i16;
    req.data[..2].copy_from_slice(&flags.to_ne_bytes());
    ioctl(&sock, libc::SIOCSIFFLAGS, &mut req, "setting the flags")
        .with_context(|| format!("bringing up {name}"))
}

/// Whether the VM has an interface of this name.
pub fn exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Give `name` its address and make `gateway` the default route.
pub fn configure(name: &str, addr: Ipv4Addr, prefix_len: u8, gateway: Ipv4Addr) -> Result<()> {
    let sock = control_socket()?;
    let mut req = IfReq::new(name)?;
    req.set_addr(addr);
    ioctl(&sock, libc::SIOCSIFADDR, &mut req, "setting the address")?;
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0);
    let mut req = IfReq::new(name)?;
    req.set_addr(Ipv4Addr::from(mask));
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut req, "setting the netmask")?;
    up(name)?;
    // SAFETY: rtentry is plain data; zero is a valid start.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    let as_sockaddr = |a: Ipv4Addr| {
        let sa = sockaddr(a);
        // SAFETY: sockaddr_in and sockaddr have the same size on Linux.
        unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sa) }
    };
    rt.rt_dst = as_sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = as_sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = as_sockaddr(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(&sock, libc::SIOCADDRT, &mut rt, "adding the default route")
        .with_context(|| format!("routing through {gateway}"))
}
