//! Subnets and addresses. A subnet must not overlap the host's own routes nor any other
//! agent's networks: agents on one machine (tests start many) each keep their networks in
//! their own state dir, so the subnets they hold are also claimed machine-wide, one file per
//! subnet under `/run/skiff/subnets`, under a lock. A claim whose owner no longer has the
//! network is stale and is taken over (one its live agent is still creating counts for a
//! minute before the network's record exists).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

const CLAIMS_DIR: &str = "/run/skiff/subnets";
/// One life lock per running agent, by tag (`LifeLock`).
const AGENTS_DIR: &str = "/run/skiff/agents";

/// docker's default address pools, in its order: the default bridge takes the first free one.
pub fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let wide = (17u8..=31).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let narrow =
        (0u8..16).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    wide.chain(narrow)
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The host's IPv4 routes other than the default one: a subnet over any of them would
/// hide part of the host's network from it.
pub fn host_routes() -> Vec<(Ipv4Net, String)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    parse_proc_route(&text)
}

/// Each route's subnet and the interface it goes out of.
fn parse_proc_route(text: &str) -> Vec<(Ipv4Net, String)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dest), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // /proc/net/route prints addresses in host byte order of a network-order value.
        let dest = Ipv4Addr::from(u32::from_be(dest.to_le()));
        let mask = Ipv4Addr::from(u32::from_be(mask.to_le()));
        let Ok(prefix) = ipnet::ipv4_mask_to_prefix(mask) else {
            continue;
        };
        if prefix == 0 {
            continue;
        }
        if let Ok(n) = Ipv4Net::new(dest, prefix) {
            out.push((n, f[0].to_string()));
        }
    }
    out
}

/// The bridges among `routes` that a dead agent left behind: a skiff bridge of another
/// agent's tag, whose agent holds no life lock (`alive`), with no port on it (`has_ports`):
/// a container that outlived its agent keeps its bridge. Their routes would otherwise keep
/// docker's pools taken for good. Liveness is the lock, not the subnet claims: a claim
/// counts without its network's record only for its first minute (`Claim::live`), and a
/// live agent's bridge has no port between its creation and its first container, or while
/// it lingers.
fn orphans(
    routes: &[(Ipv4Net, String)],
    own_tag: &str,
    alive: impl Fn(&str) -> bool,
    has_ports: impl Fn(&str) -> bool,
) -> Vec<(Ipv4Net, String)> {
    routes
        .iter()
        .filter(|(_, dev)| {
            let Some(tag) = super::store::bridge_tag(dev) else {
                return false;
            };
            tag != own_tag && !alive(tag) && !has_ports(dev)
        })
        .cloned()
        .collect()
}

/// Held for the agent's life, shared: by it other agents know that bridges with this tag
/// are not orphans.
pub struct LifeLock(#[allow(dead_code)] std::fs::File);

fn life_lock_path(dir: &Path, tag: &str) -> PathBuf {
    dir.join(format!("{tag}.alive"))
}

fn hold_life_lock(dir: &Path, tag: &str) -> Result<LifeLock> {
    let path = life_lock_path(dir, tag);
    loop {
        let f = flocked(dir, &path, libc::LOCK_SH)?;
        // `sweep_life_locks` may have unlinked the file between our open and our lock: a
        // lock on a file no longer at its path would tell nobody we live.
        if still_at(&f, &path) {
            return Ok(LifeLock(f));
        }
    }
}

/// Whether `path` still names the file `f` opened.
fn still_at(f: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Life locks of agents that are gone (killed, or stopped without a sweep) are removed, so
/// that the directory does not grow with every agent ever started. One is gone when nobody
/// holds it: the exclusive lock taken here then succeeds, and is held across the unlink
/// (`hold_life_lock` checks that its file is still in place once locked).
fn sweep_life_locks(dir: &Path, own: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path == own || path.extension().is_none_or(|x| x != "alive") {
            continue;
        }
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        // SAFETY: a valid fd; flock has no memory-safety preconditions.
        let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 };
        if free && still_at(&f, &path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// `path` (in `dir`, made if missing) opened, created if need be, and `flock`ed with `how`,
/// waiting for it: the claims' lock and the life locks.
fn flocked(dir: &Path, path: &Path, how: libc::c_int) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: a valid fd; flock has no memory-safety preconditions.
    if unsafe { libc::flock(f.as_raw_fd(), how) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("locking {}", path.display()));
    }
    Ok(f)
}

/// Whether an agent holds the life lock of `tag`. A missing file is an agent that is gone
/// (or one from before the locks, whose idle bridges it makes again when needed).
fn tag_alive(dir: &Path, tag: &str) -> bool {
    let Ok(f) = std::fs::File::open(life_lock_path(dir, tag)) else {
        return false;
    };
    // SAFETY: a valid fd; flock has no memory-safety preconditions. Our probe's own lock
    // goes when `f` is closed.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// Whether a bridge has an interface enslaved (or is not a bridge: then it is not ours).
fn bridge_has_ports(dev: &str) -> bool {
    match std::fs::read_dir(format!("/sys/class/net/{dev}/brif")) {
        Ok(mut rd) => rd.next().is_some(),
        Err(_) => true,
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Claim {
    root: PathBuf,
    network: String,
    /// The claiming agent's tag (its life lock); empty in claims older than it.
    #[serde(default)]
    agent: String,
}

/// How long a live agent's claim counts without its network's record: the record is written
/// just after the claim, once the bridge is up.
const CLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

impl Claim {
    /// Whether the claim still holds its subnet: its network's record exists, or it is a
    /// network its agent (alive) is still creating. A claim whose record was not written yet
    /// was taken for stale before, and two agents could pick one subnet.
    fn live(&self, agents: &Path, age: std::time::Duration) -> bool {
        self.root
            .join("networks")
            .join(format!("{}.json", self.network))
            .exists()
            || (age < CLAIM_GRACE && !self.agent.is_empty() && tag_alive(agents, &self.agent))
    }
}

/// Machine-wide subnet claims, and the agent's life lock.
pub struct Claims {
    dir: PathBuf,
    root: PathBuf,
    tag: String,
    agents: PathBuf,
    _alive: LifeLock,
}

impl Claims {
    pub fn new(root: &Path, tag: &str) -> Result<Self> {
        Self::in_dirs(Path::new(CLAIMS_DIR), Path::new(AGENTS_DIR), root, tag)
    }

    fn in_dirs(dir: &Path, agents: &Path, root: &Path, tag: &str) -> Result<Self> {
        let alive = hold_life_lock(agents, tag)?;
        sweep_life_locks(agents, &life_lock_path(agents, tag));
        Ok(Self {
            dir: dir.to_path_buf(),
            root: root.to_path_buf(),
            tag: tag.to_string(),
            agents: agents.to_path_buf(),
            _alive: alive,
        })
    }

    #[cfg(test)]
    fn in_dir(dir: &Path, root: &Path) -> Self {
        let tag = root.file_name().unwrap().to_string_lossy().into_owned();
        Self::in_dirs(dir, &dir.join("agents"), root, &tag).unwrap()
    }

    fn lock(&self) -> Result<std::fs::File> {
        flocked(&self.dir, &self.dir.join(".lock"), libc::LOCK_EX)
            .context("locking the subnet claims")
    }

    fn file(&self, net: &Ipv4Net) -> PathBuf {
        self.dir
            .join(format!("{}_{}", net.network(), net.prefix_len()))
    }

    /// Bridges left by dead agents (`orphans`), to delete; `claim` already counts their
    /// subnets as free.
    pub fn orphaned_bridges(&self) -> Vec<(Ipv4Net, String)> {
        self.orphans_among(&host_routes())
    }

    fn orphans_among(&self, routes: &[(Ipv4Net, String)]) -> Vec<(Ipv4Net, String)> {
        orphans(
            routes,
            &self.tag,
            |tag| tag_alive(&self.agents, tag),
            bridge_has_ports,
        )
    }

    /// Subnets held by live claims other than network `me`'s own.
    fn taken(&self, me: &str) -> Vec<Ipv4Net> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((addr, len)) = name.split_once('_') else {
                continue;
            };
            let (Ok(addr), Ok(len)) = (addr.parse::<Ipv4Addr>(), len.parse::<u8>()) else {
                continue;
            };
            let Ok(net) = Ipv4Net::new(addr, len) else {
                continue;
            };
            let claim: Option<Claim> = std::fs::read(e.path())
                .ok()
                .and_then(|raw| serde_json::from_slice(&raw).ok());
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or(CLAIM_GRACE);
            match claim {
                Some(c) if c.root == self.root && c.network == me => {}
                Some(c) if c.live(&self.agents, age) => out.push(net),
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        out
    }

    /// Claim `want` (a subnet the user gave) for network `id`, or the first free pool subnet.
    /// `own_routes` are routes of this agent's own bridges, which are not conflicts.
    pub fn claim(&self, id: &str, want: Option<Ipv4Net>, own: &[Ipv4Net]) -> Result<Ipv4Net> {
        let _lock = self.lock()?;
        let mut taken = self.taken(id);
        let routes = host_routes();
        let gone = self.orphans_among(&routes);
        taken.extend(
            routes
                .into_iter()
                .filter(|r| !own.contains(&r.0) && !gone.contains(r))
                .map(|(net, _)| net),
        );
        let chosen = match want {
            Some(w) => {
                if let Some(t) = taken.iter().find(|t| overlaps(t, &w)) {
                    return Err(anyhow!(
                        "Pool overlaps with other one on this address space: {w} overlaps {t}, which the host or another network uses; choose another --subnet"
                    ));
                }
                w
            }
            None => default_pools()
                .find(|p| !taken.iter().any(|t| overlaps(t, p)))
                .ok_or_else(|| {
                    anyhow!("all predefined address pools have been fully subnetted; remove unused networks or give --subnet")
                })?,
        };
        let claim = Claim {
            root: self.root.clone(),
            network: id.to_string(),
            agent: self.tag.clone(),
        };
        let mut f = std::fs::File::create(self.file(&chosen))?;
        f.write_all(&serde_json::to_vec(&claim)?)?;
        Ok(chosen)
    }

    pub fn release(&self, id: &str, net: &Ipv4Net) {
        let Ok(_lock) = self.lock() else { return };
        let path = self.file(net);
        let mine = std::fs::read(&path)
            .ok()
            .and_then(|raw| serde_json::from_slice::<Claim>(&raw).ok())
            .is_some_and(|c| c.root == self.root && c.network == id);
        if mine {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The gateway docker picks: the subnet's first host address.
pub fn default_gateway(net: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// The next free address after `last` (wrapping), so that a just-released address is not
/// handed to the next container while peers may still have it in their ARP caches.
pub fn allocate(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    last: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let pool = range.unwrap_or(subnet);
    let first = u32::from(pool.network()).max(u32::from(subnet.network()) + 1);
    let end = u32::from(pool.broadcast()).min(u32::from(subnet.broadcast()) - 1);
    if first > end {
        return None;
    }
    let start = last
        .map(u32::from)
        .filter(|l| (first..=end).contains(l))
        .map(|l| if l == end { first } else { l + 1 })
        .unwrap_or(first);
    let span = end - first + 1;
    (0..span)
        .map(|i| first + (start - first + i) % span)
        .map(Ipv4Addr::from)
        .find(|a| *a != gateway && !used.contains(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn proc_route_is_read_in_network_order() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            parse_proc_route(text),
            vec![
                (net("192.0.2.0/24"), "eth0".to_string()),
                (net("172.17.0.0/16"), "docker0".to_string())
            ]
        );
    }

    #[test]
    fn only_idle_bridges_of_dead_agents_are_orphans() {
        let route = |n: &str, dev: &str| (net(n), dev.to_string());
        let routes = [
            route("192.0.2.0/24", "eth0"),
            route("172.17.0.0/16", "docker0"),
            // Its agent is dead and nothing is on it.
            route("172.18.0.0/16", "sk1a2b0123abcd"),
            // Its agent lives, though the bridge is idle.
            route("172.19.0.0/16", "sk3c4d4567cdef"),
            // A container outlived its agent on it.
            route("172.20.0.0/16", "skffff89abcdef"),
            // Ours: our own sweep sees to it.
            route("172.21.0.0/16", "sk9999aaaabbbb"),
            // Not a name skiff gives.
            route("172.22.0.0/16", "skype0"),
        ];
        let got = orphans(
            &routes,
            "9999",
            |tag| tag == "3c4d",
            |dev| dev == "skffff89abcdef",
        );
        assert_eq!(got, vec![route("172.18.0.0/16", "sk1a2b0123abcd")]);
    }

    #[test]
    fn a_life_lock_is_seen_while_held() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!tag_alive(tmp.path(), "abcd"));
        let held = hold_life_lock(tmp.path(), "abcd").unwrap();
        // A second agent with the same tag is not refused.
        let again = hold_life_lock(tmp.path(), "abcd").unwrap();
        assert!(tag_alive(tmp.path(), "abcd"));
        drop((held, again));
        assert!(!tag_alive(tmp.path(), "abcd"));
    }

    #[test]
    fn the_locks_of_gone_agents_are_swept_and_held_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let held = hold_life_lock(dir, "aaaa").unwrap();
        drop(hold_life_lock(dir, "bbbb").unwrap());
        std::fs::write(dir.join("other.txt"), "").unwrap();
        let own = life_lock_path(dir, "cccc");
        let _own = hold_life_lock(dir, "cccc").unwrap();
        sweep_life_locks(dir, &own);
        assert!(life_lock_path(dir, "aaaa").exists());
        assert!(!life_lock_path(dir, "bbbb").exists());
        assert!(dir.join("other.txt").exists());
        assert!(tag_alive(dir, "aaaa") && tag_alive(dir, "cccc"));
        drop(held);
        sweep_life_locks(dir, &own);
        assert!(!life_lock_path(dir, "aaaa").exists());
        assert!(tag_alive(dir, "cccc"));
    }

    #[test]
    fn a_lock_taken_on_a_swept_file_is_taken_again_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let path = life_lock_path(tmp.path(), "abcd");
        let f = flocked(tmp.path(), &path, libc::LOCK_SH).unwrap();
        assert!(still_at(&f, &path));
        // What a sweep between the open and the lock leaves: the path names another file.
        std::fs::remove_file(&path).unwrap();
        assert!(!still_at(&f, &path));
        std::fs::write(&path, "").unwrap();
        assert!(!still_at(&f, &path));
        let held = hold_life_lock(tmp.path(), "abcd").unwrap();
        assert!(still_at(&held.0, &path));
        assert!(tag_alive(tmp.path(), "abcd"));
    }

    #[test]
    fn addresses_skip_network_gateway_broadcast_and_used() {
        let s = net("10.1.0.0/29");
        let gw = default_gateway(&s);
        assert_eq!(gw, Ipv4Addr::new(10, 1, 0, 1));
        let mut used = BTreeSet::new();
        let a = allocate(&s, None, gw, &used, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 1, 0, 2));
        used.insert(a);
        let b = allocate(&s, None, gw, &used, Some(a)).unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 1, 0, 3));
        // Wraps past the end, never gives .7 (broadcast) or .0.
        let last = Ipv4Addr::new(10, 1, 0, 6);
        assert_eq!(allocate(&s, None, gw, &used, Some(last)), Some(b));
        used.extend((3..=6).map(|i| Ipv4Addr::new(10, 1, 0, i)));
        assert_eq!(allocate(&s, None, gw, &used, Some(last)), None);
    }

    #[test]
    fn ip_range_limits_the_pool() {
        let s = net("10.2.0.0/16");
        let r = net("10.2.5.0/30");
        let gw = default_gateway(&s);
        let a = allocate(&s, Some(&r), gw, &BTreeSet::new(), None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 2, 5, 0));
    }

    #[test]
    fn claims_avoid_each_other_and_take_over_stale_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let root_a = tmp.path().join("a");
        let root_b = tmp.path().join("b");
        for r in [&root_a, &root_b] {
            std::fs::create_dir_all(r.join("networks")).unwrap();
        }
        let claims_dir = tmp.path().join("claims");
        let a = Claims::in_dir(&claims_dir, &root_a);
        let b = Claims::in_dir(&claims_dir, &root_b);
        let na = a.claim("n1", None, &[]).unwrap();
        std::fs::write(root_a.join("networks/n1.json"), "{}").unwrap();
        let nb = b.claim("n2", None, &[]).unwrap();
        assert!(!overlaps(&na, &nb), "{na} vs {nb}");
        // n2's record is not written yet (its bridge is coming up): a live agent's fresh
        // claim holds all the same.
        let n4 = a.claim("n4", None, &[]).unwrap();
        assert!(!overlaps(&n4, &nb), "{n4} vs {nb}");
        a.release("n4", &n4);
        // An explicit subnet inside another agent's is refused.
        let inside = Ipv4Net::new(na.network(), 24).unwrap();
        let err = b.claim("n3", Some(inside), &[]).unwrap_err();
        assert!(err.to_string().contains("overlaps"), "{err}");
        // Once that agent is gone and its network with it, its claim is stale.
        drop(a);
        std::fs::remove_file(root_a.join("networks/n1.json")).unwrap();
        assert_eq!(b.claim("n3", Some(inside), &[]).unwrap(), inside);
        // Re-claiming one's own subnet is fine.
        assert_eq!(b.claim("n3", Some(inside), &[]).unwrap(), inside);
        b.release("n3", &inside);
        assert!(!claims_dir.join(format!("{}_24", inside.network())).exists());
    }
}
