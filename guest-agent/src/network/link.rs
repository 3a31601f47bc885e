//! Links, addresses and routes over rtnetlink, and the network namespaces containers live in.
//!
//! A container's namespace is made by the agent, not by the runtime, and pinned by a bind
//! mount at a file: the network is wired before the container's process exists (so a port
//! conflict fails `start` before anything runs), survives the agent, and `connect` can add an
//! interface to a running container.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

const ENOENT: i32 = libc::ENOENT;
const EEXIST: i32 = libc::EEXIST;

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

/// A netlink connection bound to one network namespace (the socket's, fixed at creation).
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// The agent's own namespace. Needs a tokio runtime.
    pub fn host() -> Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// A connection inside the namespace pinned at `ns`: the socket is made by a thread that
    /// joined the namespace, because a socket belongs to its creator's namespace for good.
    pub fn inside(ns: &File) -> Result<Self> {
        let fd = ns.as_raw_fd();
        let sock = std::thread::scope(|s| {
            s.spawn(|| -> std::io::Result<OwnedFd> {
                // SAFETY: setns on a valid namespace fd; it affects only this short-lived thread.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: plain socket(2); the result is checked before use.
                let raw = unsafe {
                    libc::socket(
                        libc::AF_NETLINK,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        libc::NETLINK_ROUTE,
                    )
                };
                if raw < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: raw is a fresh fd we own.
                Ok(unsafe { OwnedFd::from_raw_fd(raw) })
            })
            .join()
            .map_err(|_| std::io::Error::other("netlink thread panicked"))?
        })
        .context("opening a netlink socket in the container's network namespace")?;
        // SAFETY: the fd is ours and valid; TokioSocket takes ownership.
        let socket = unsafe { netlink_sys::TokioSocket::from_raw_fd(sock.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    pub async fn index_of(&self, name: &str) -> Result<Option<u32>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(m)) => Ok(Some(m.header.index)),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) || errno(&e) == Some(ENOENT) => Ok(None),
            Err(e) => Err(anyhow!("looking up link {name}: {e}")),
        }
    }

    /// The names of the links whose name starts with `prefix`.
    pub async fn names_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut links = self.handle.link().get().execute();
        let mut names = Vec::new();
        while let Some(m) = links
            .try_next()
            .await
            .map_err(|e| anyhow!("listing links: {e}"))?
        {
            let name = m.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            if let Some(n) = name.filter(|n| n.starts_with(prefix)) {
                names.push(n);
            }
        }
        Ok(names)
    }

    async fn link(&self, name: &str) -> Result<LinkMessage> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        links
            .try_next()
            .await
            .map_err(|e| anyhow!("looking up link {name}: {e}"))?
            .ok_or_else(|| anyhow!("link {name} not found"))
    }

    /// The bridge with `gateway/prefix` on it, up. Idempotent, so a restart (or a host whose
    /// bridge vanished) converges to the same state.
    pub async fn ensure_bridge(&self, name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<u32> {
        let index = match self.index_of(name).await? {
            Some(i) => i,
            None => {
                let add = self
                    .handle
                    .link()
                    .add(LinkBridge::new(name).build())
                    .execute();
                match add.await {
                    Err(e) if errno(&e) != Some(EEXIST) => {
                        return Err(anyhow!("creating bridge {name}: {e}"))
                    }
                    _ => {}
                }
                self.index_of(name)
                    .await?
                    .ok_or_else(|| anyhow!("bridge {name} vanished after creation"))?
            }
        };
        let add = self
            .handle
            .address()
            .add(index, IpAddr::V4(gateway), prefix)
            .execute();
        match add.await {
            Err(e) if errno(&e) != Some(EEXIST) => {
                return Err(anyhow!("adding {gateway}/{prefix} to {name}: {e}"))
            }
            _ => {}
        }
        self.set_up(index).await?;
        Ok(index)
    }

    pub async fn set_up(&self, index: u32) -> Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| anyhow!("bringing link {index} up: {e}"))
    }

    /// Delete a link; one already gone is fine.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let Some(index) = self.index_of(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Err(e) if errno(&e) != Some(libc::ENODEV) && errno(&e) != Some(ENOENT) => {
                Err(anyhow!("deleting link {name}: {e}"))
            }
            _ => Ok(()),
        }
    }

    /// A veth pair: `host_name` enslaved to the bridge and up, its peer created directly
    /// inside the namespace `ns` as `ifname` (one message, no rename step).
    pub async fn add_veth(
        &self,
        host_name: &str,
        bridge_index: u32,
        ns: &File,
        ifname: &str,
    ) -> Result<()> {
        let peer = LinkUnspec::new_with_name(ifname)
            .setns_by_fd(ns.as_fd().as_raw_fd())
            .build();
        let mut msg = LinkVeth::new(host_name, ifname)
            .controller(bridge_index)
            .up()
            .build();
        // Replace the builder's peer (name only) with ours, which carries the namespace.
        for attr in msg.attributes.iter_mut() {
            if let LinkAttribute::LinkInfo(infos) = attr {
                for info in infos.iter_mut() {
                    if let netlink_packet_route::link::LinkInfo::Data(d) = info {
                        *d = InfoData::Veth(InfoVeth::Peer(peer.clone()));
                    }
                }
            }
        }
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| anyhow!("creating veth {host_name}: {e}"))
    }

    /// Inside a container's namespace: address, up, and (for its first network) the default
    /// route. Returns the interface's MAC address.
    pub async fn configure(
        &self,
        ifname: &str,
        addr: Ipv4Addr,
        prefix: u8,
        default_via: Option<Ipv4Addr>,
    ) -> Result<String> {
        let link = self.link(ifname).await?;
        let index = link.header.index;
        self.handle
            .address()
            .add(index, IpAddr::V4(addr), prefix)
            .execute()
            .await
            .map_err(|e| anyhow!("adding {addr}/{prefix} to {ifname}: {e}"))?;
        self.set_up(index).await?;
        if let Some(gw) = default_via {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build();
            self.handle
                .route()
                .add(route)
                .execute()
                .await
                .map_err(|e| anyhow!("adding the default route via {gw}: {e}"))?;
        }
        let mac = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(b) => Some(b.clone()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"))
    }

    pub async fn loopback_up(&self) -> Result<()> {
        let index = self
            .index_of("lo")
            .await?
            .ok_or_else(|| anyhow!("the namespace has no lo"))?;
        self.set_up(index).await
    }
}

/// A new network namespace pinned at `path` (an empty file is created for the bind mount).
pub fn create_netns(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let target = path.to_path_buf();
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            // SAFETY: unshare affects only this thread, which ends right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error()).context("unshare(CLONE_NEWNET)");
            }
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .with_context(|| format!("pinning the network namespace at {}", target.display()))
        })
        .join()
        .map_err(|_| anyhow!("the namespace thread panicked"))?
    })
    .inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })?;
    File::open(path).with_context(|| format!("opening {}", path.display()))
}

/// Unpin a namespace; the kernel frees it (and the veth ends in it) once nothing uses it.
pub fn remove_netns(path: &Path) {
    // Not mounted (a host reboot unpinned it) and already gone are the expected misses; any
    // other failure leaves a namespace pinned, and is worth a line in the log.
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
        Err(e) => tracing::warn!("unpinning the network namespace {}: {e}", path.display()),
    }
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }
}

/// Pinned and usable: after a host reboot the file is there but the mount is not.
pub fn netns_pinned(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    rustix::fs::fstatfs(&f).is_ok_and(|s| s.f_type == 0x6e736673)
}
