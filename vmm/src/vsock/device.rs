//! The virtio-vsock device: connections, the host sockets' event loop, and the RX/TX queues.
//!
//! Nothing here knows how the queues reach the guest. A VMM hands in a `GuestMemory` and the
//! `Queue`s when the guest kicks or when [`VsockDevice::as_raw_fd`] (an epoll fd covering every
//! host socket) becomes readable, and raises the guest's interrupt when a call returns true.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use virtio_queue::{Queue, QueueT};
use vm_memory::bitmap::BitmapSlice;
use vm_memory::GuestMemory;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::timerfd::TimerFd;

use super::conn::{ConnKey, Connection, Initiator, Verdict};
use super::host::{self, Handshake, HandshakeStatus, HostListener};
use super::packet::{RxBuffer, TxPacket};
use super::proto::{Header, Op, HOST_CID, MAX_PAYLOAD, TYPE_STREAM};
use super::VsockConfig;

/// Queue indices of a virtio-vsock device.
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
pub const EVENT_QUEUE: usize = 2;
pub const NUM_QUEUES: usize = 3;

/// Open connections we keep at most, each side counted apart: when one cap was shared, a guest
/// that held every slot (a container allowed AF_VSOCK, a compromised engine) shut the host out
/// of its own VM: no API, no clock sync, no published ports.
///
/// Each connection may hold up to `BUF_ALLOC` of guest data for a slow host socket, so the caps
/// also bound what a guest can make us buffer: (1024 + 256) × 256 KiB = 320 MiB, 64 MiB of it
/// on connections the guest opens itself.
///
/// Host-initiated: API clients and published-port connections; the port benchmark holds 1,000
/// through one published port.
const MAX_HOST_CONNECTIONS: usize = 1024;
/// Guest-initiated: one control connection per engine and a few egress connections per pull;
/// nothing in the guest needs hundreds. Capped per host port too, so that a flood of one port
/// (egress) still leaves room on the others (control).
const MAX_GUEST_CONNECTIONS: usize = 256;
const MAX_GUEST_CONNECTIONS_PER_PORT: usize = 128;
/// A refused host port is warned about at most this often; refusals in between are counted
/// into the next warning, so that a flood does not flood the log too.
const REFUSAL_WARN_INTERVAL: Duration = Duration::from_secs(1);
/// Host ports whose refusals we keep count of; refusals on more ports within one interval are
/// logged at debug only, so that a guest scanning ports cannot grow the table.
const MAX_REFUSAL_PORTS: usize = 64;
/// Host connections still writing their CONNECT line.
const MAX_HANDSHAKES: usize = 64;
/// RSTs for connections that no longer exist, waiting for RX buffers. A guest that floods us
/// with bad packets and no RX buffers loses the excess.
const MAX_CONTROL: usize = 1024;
/// How long a host CONNECT waits for the guest to accept, and a host client for its line.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_secs(1);
/// Host-initiated connections get local ports from here up, as in Firecracker, out of the way
/// of the well-known ports guests connect to.
const FIRST_HOST_PORT: u32 = 1 << 30;
/// Rounds of epoll_wait per call; what is left is reported again by the level-triggered fd.
const MAX_EVENT_ROUNDS: usize = 16;

const TOKEN_LISTENER: u64 = 0;
const TOKEN_TIMER: u64 = 1;
const FIRST_TOKEN: u64 = 2;

/// The connection caps; tests shrink them to reach them cheaply.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub host: usize,
    pub guest: usize,
    pub guest_per_port: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            host: MAX_HOST_CONNECTIONS,
            guest: MAX_GUEST_CONNECTIONS,
            guest_per_port: MAX_GUEST_CONNECTIONS_PER_PORT,
        }
    }
}

/// Which cap turned a guest connect away.
#[derive(Clone, Copy, Debug)]
enum GuestCap {
    PerPort,
    Total,
}

/// Guest connects refused on one host port since its last warning.
#[derive(Debug)]
struct Refusals {
    warned: Instant,
    suppressed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set up the device's event fds: {0}")]
    Setup(io::Error),
    #[error("epoll failed: {0}")]
    Epoll(io::Error),
    #[error("timerfd failed: {0}")]
    Timer(vmm_sys_util::errno::Error),
    #[error("virtqueue access failed: {0}")]
    Queue(virtio_queue::Error),
}

/// How one pass over the RX queue ended.
enum RxPass {
    NothingToSend,
    OutOfBuffers,
}

pub struct VsockDevice {
    guest_cid: u64,
    uds_path: PathBuf,
    epoll: Epoll,
    listener: HostListener,
    listener_paused: bool,
    timer: TimerFd,
    timer_armed: bool,
    conns: HashMap<ConnKey, Connection>,
    limits: Limits,
    /// `conns` by who opened them, and the guest's by host port (ports with none left out).
    host_conns: usize,
    guest_conns: usize,
    guest_per_port: HashMap<u32, usize>,
    refusals: HashMap<u32, Refusals>,
    /// epoll token to connection.
    tokens: HashMap<u64, ConnKey>,
    handshakes: HashMap<u64, Handshake>,
    next_token: u64,
    next_host_port: u32,
    /// Connections with something for the guest, served round-robin one packet at a time.
    rx_queue: VecDeque<ConnKey>,
    /// Connections that had something but could not put it into the buffer at hand.
    rx_deferred: Vec<ConnKey>,
    /// Packets not tied to a live connection (RSTs), sent before anything else.
    control: VecDeque<Header>,
    scratch: Vec<u8>,
}

impl VsockDevice {
    /// Binds `config.uds_path` for host-initiated connections.
    pub fn new(config: &VsockConfig) -> Result<VsockDevice, DeviceError> {
        VsockDevice::with_limits(config, Limits::default())
    }

    pub(super) fn with_limits(
        config: &VsockConfig,
        limits: Limits,
    ) -> Result<VsockDevice, DeviceError> {
        let listener =
            HostListener::bind(&config.uds_path).map_err(|source| DeviceError::Bind {
                path: config.uds_path.clone(),
                source,
            })?;
        let epoll = Epoll::new().map_err(DeviceError::Setup)?;
        let timer = TimerFd::new().map_err(DeviceError::Timer)?;
        set_nonblocking(timer.as_raw_fd()).map_err(DeviceError::Setup)?;
        for (fd, token) in [
            (listener.listener().as_raw_fd(), TOKEN_LISTENER),
            (timer.as_raw_fd(), TOKEN_TIMER),
        ] {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, token),
                )
                .map_err(DeviceError::Setup)?;
        }
        Ok(VsockDevice {
            guest_cid: config.guest_cid,
            uds_path: config.uds_path.clone(),
            epoll,
            listener,
            listener_paused: false,
            timer,
            timer_armed: false,
            conns: HashMap::new(),
            limits,
            host_conns: 0,
            guest_conns: 0,
            guest_per_port: HashMap::new(),
            refusals: HashMap::new(),
            tokens: HashMap::new(),
            handshakes: HashMap::new(),
            next_token: FIRST_TOKEN,
            next_host_port: FIRST_HOST_PORT,
            rx_queue: VecDeque::new(),
            rx_deferred: Vec::new(),
            control: VecDeque::new(),
            scratch: vec![0; MAX_PAYLOAD],
        })
    }

    pub fn guest_cid(&self) -> u64 {
        self.guest_cid
    }

    pub fn uds_path(&self) -> &Path {
        &self.uds_path
    }

    /// `struct virtio_vsock_config`.
    pub fn config_space(&self) -> [u8; 8] {
        self.guest_cid.to_le_bytes()
    }

    /// Number of open connections (handshakes with host clients not counted).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Forgets every connection, closing their host sockets: the guest driver was reset, so its
    /// sockets are gone. Host clients still writing their CONNECT line are kept.
    pub fn reset(&mut self) {
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for key in keys {
            self.remove(key);
        }
        self.rx_queue.clear();
        self.rx_deferred.clear();
        self.control.clear();
    }

    /// Handles every packet the guest queued on TX. Returns whether the guest should be
    /// notified of used buffers.
    pub fn process_tx<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        loop {
            queue
                .disable_notification(mem)
                .map_err(DeviceError::Queue)?;
            while let Some(chain) = queue.pop_descriptor_chain(mem) {
                let head = chain.head_index();
                match TxPacket::parse(mem, chain) {
                    Ok(mut pkt) => self.on_guest_packet(&pkt.hdr, &mut pkt.payload),
                    Err(e) => debug!("vsock: dropping TX packet: {e}"),
                }
                queue.add_used(mem, head, 0).map_err(DeviceError::Queue)?;
                used = true;
            }
            if !queue.enable_notification(mem).map_err(DeviceError::Queue)? {
                break;
            }
        }
        Ok(used && queue.needs_notification(mem).map_err(DeviceError::Queue)?)
    }

    /// Moves whatever is owed to the guest into RX buffers. Returns whether the guest should be
    /// notified of used buffers.
    pub fn process_rx<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        let result = loop {
            // Kicks for new RX buffers are only wanted while we wait for one: each is a VM exit.
            if let Err(e) = queue.disable_notification(mem) {
                break Err(DeviceError::Queue(e));
            }
            match self.fill_rx(mem, queue, &mut used) {
                Ok(RxPass::NothingToSend) => break Ok(()),
                Ok(RxPass::OutOfBuffers) => match queue.enable_notification(mem) {
                    Ok(true) => continue,
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(DeviceError::Queue(e)),
                },
                Err(e) => break Err(e),
            }
        };
        self.rx_queue.extend(self.rx_deferred.drain(..));
        result?;
        Ok(used && queue.needs_notification(mem).map_err(DeviceError::Queue)?)
    }

    fn fill_rx<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
        used: &mut bool,
    ) -> Result<RxPass, DeviceError> {
        loop {
            if self.control.is_empty() && self.rx_queue.is_empty() {
                return Ok(RxPass::NothingToSend);
            }
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                return Ok(RxPass::OutOfBuffers);
            };
            let head = chain.head_index();
            let len = match RxBuffer::new(mem, chain) {
                Ok(mut buf) => match self.next_packet(&mut buf) {
                    Some(hdr) => buf.finish(hdr).unwrap_or_else(|e| {
                        debug!("vsock: cannot write RX packet: {e}");
                        0
                    }),
                    None => {
                        // Whoever was queued had nothing after all: leave the buffer for later.
                        queue.set_next_avail(queue.next_avail().wrapping_sub(1));
                        continue;
                    }
                },
                Err(e) => {
                    debug!("vsock: returning unusable RX buffer: {e}");
                    0
                }
            };
            queue.add_used(mem, head, len).map_err(DeviceError::Queue)?;
            *used = true;
        }
    }

    /// The next packet for the guest, written into `buf` (payload) and returned (header).
    fn next_packet<B: BitmapSlice>(&mut self, buf: &mut RxBuffer<'_, B>) -> Option<Header> {
        if let Some(h) = self.control.pop_front() {
            return Some(h);
        }
        while let Some(key) = self.rx_queue.pop_front() {
            let Some(conn) = self.conns.get_mut(&key) else {
                continue;
            };
            conn.in_rx_queue = false;
            let (hdr, verdict) = conn.next_rx(buf, &mut self.scratch);
            if hdr.is_none() && verdict == Verdict::Keep && conn.wants_rx() {
                // Data the buffer has no room for: retry with the next buffer, not this one.
                conn.in_rx_queue = true;
                self.rx_deferred.push(key);
                continue;
            }
            self.settle(key, verdict);
            if hdr.is_some() {
                return hdr;
            }
            if let Some(h) = self.control.pop_front() {
                return Some(h);
            }
        }
        None
    }

    fn on_guest_packet<B: BitmapSlice>(
        &mut self,
        hdr: &Header,
        payload: &mut virtio_queue::Reader<'_, B>,
    ) {
        if hdr.src_cid != self.guest_cid || hdr.dst_cid != HOST_CID {
            debug!(
                "vsock: dropping packet from CID {} to CID {}",
                hdr.src_cid, hdr.dst_cid
            );
            return;
        }
        let key = ConnKey {
            local_port: hdr.dst_port,
            peer_port: hdr.src_port,
        };
        let is_rst = hdr.op == Op::Rst as u16;
        if hdr.type_ != TYPE_STREAM {
            // Only stream sockets exist here (no SEQPACKET feature offered).
            if let Some(mut conn) = self.remove(key) {
                let rst = conn.rst();
                self.push_control(rst);
            }
            if !is_rst {
                self.push_control(hdr.reply(Op::Rst));
            }
            return;
        }
        if let Some(conn) = self.conns.get_mut(&key) {
            let verdict = conn.on_guest_packet(hdr, payload, &mut self.scratch);
            self.settle(key, verdict);
        } else if hdr.op == Op::Request as u16 {
            self.connect_for_guest(key, hdr);
        } else if !is_rst {
            self.push_control(hdr.reply(Op::Rst));
        }
    }

    fn connect_for_guest(&mut self, key: ConnKey, req: &Header) {
        // Checked before connecting: a refused guest must cost the host listener nothing.
        let on_port = self.guest_per_port.get(&key.local_port).copied();
        if on_port.unwrap_or(0) >= self.limits.guest_per_port {
            self.refuse_guest_connect(req, GuestCap::PerPort);
            return;
        }
        if self.guest_conns >= self.limits.guest {
            self.refuse_guest_connect(req, GuestCap::Total);
            return;
        }
        let path = host::port_path(&self.uds_path, key.local_port);
        match host::connect(&path) {
            Ok(stream) => {
                let token = self.alloc_token();
                let conn = Connection::guest_initiated(key, self.guest_cid, stream, token, req);
                self.insert(key, conn);
            }
            Err(e) => {
                debug!("vsock: guest connect to {}: {e}", path.display());
                self.push_control(req.reply(Op::Rst));
            }
        }
    }

    /// Answers a guest connect with RST for want of room, and says so at most once per host
    /// port and `REFUSAL_WARN_INTERVAL`.
    fn refuse_guest_connect(&mut self, req: &Header, cap: GuestCap) {
        self.push_control(req.reply(Op::Rst));
        let port = req.dst_port;
        let now = Instant::now();
        if !self.refusals.contains_key(&port) && self.refusals.len() >= MAX_REFUSAL_PORTS {
            self.refusals
                .retain(|_, r| now.duration_since(r.warned) < REFUSAL_WARN_INTERVAL);
        }
        let room = self.refusals.len() < MAX_REFUSAL_PORTS;
        let suppressed = match self.refusals.get_mut(&port) {
            Some(r) if now.duration_since(r.warned) < REFUSAL_WARN_INTERVAL => {
                r.suppressed += 1;
                return;
            }
            Some(r) => {
                r.warned = now;
                std::mem::take(&mut r.suppressed)
            }
            None if room => {
                self.refusals.insert(
                    port,
                    Refusals {
                        warned: now,
                        suppressed: 0,
                    },
                );
                0
            }
            None => {
                debug!("vsock: refusing guest connect to host port {port}: {cap:?} cap reached");
                return;
            }
        };
        let held = match cap {
            GuestCap::PerPort => format!(
                "the guest holds {} connections to this port",
                self.limits.guest_per_port
            ),
            GuestCap::Total => format!("the guest holds {} connections", self.limits.guest),
        };
        let since = if suppressed > 0 {
            format!(" ({suppressed} more refused on this port since the last warning)")
        } else {
            String::new()
        };
        warn!("vsock: refusing guest connect to host port {port}: {held}, the most it may{since}");
    }

    fn connect_for_host(&mut self, stream: std::os::unix::net::UnixStream, peer_port: u32) {
        // accept_host keeps handshakes within the cap, so this is a safety net only.
        if self.host_conns >= self.limits.host {
            warn!(
                "vsock: {} host connections open, refusing host connect to guest port {peer_port}",
                self.limits.host
            );
            return;
        }
        let key = ConnKey {
            local_port: self.alloc_host_port(peer_port),
            peer_port,
        };
        let token = self.alloc_token();
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let conn = Connection::host_initiated(key, self.guest_cid, stream, token, deadline);
        self.insert(key, conn);
        self.arm_timer();
    }

    fn insert(&mut self, key: ConnKey, conn: Connection) {
        // Counted before settle, which may remove it again.
        match conn.initiator() {
            Initiator::Host => self.host_conns += 1,
            Initiator::Guest => {
                self.guest_conns += 1;
                *self.guest_per_port.entry(key.local_port).or_default() += 1;
            }
        }
        self.tokens.insert(conn.token, key);
        self.conns.insert(key, conn);
        self.settle(key, Verdict::Keep);
    }

    /// Applies a verdict: forgets the connection, or brings its epoll interest and RX
    /// scheduling in line with its state.
    fn settle(&mut self, key: ConnKey, verdict: Verdict) {
        match verdict {
            Verdict::Keep => {}
            Verdict::Reset => {
                if let Some(mut conn) = self.remove(key) {
                    let rst = conn.rst();
                    self.push_control(rst);
                }
                return;
            }
            Verdict::Forget => {
                self.remove(key);
                return;
            }
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let want = conn.desired_interest();
        let fd = conn.stream().as_raw_fd();
        let op = match (conn.interest, want.is_empty()) {
            (None, false) => Some(ControlOperation::Add),
            (Some(have), false) if have != want => Some(ControlOperation::Modify),
            (Some(_), true) => Some(ControlOperation::Delete),
            _ => None,
        };
        if let Some(op) = op {
            if let Err(e) = self.epoll.ctl(op, fd, EpollEvent::new(want, conn.token)) {
                warn!("vsock: epoll_ctl on a host socket failed: {e}");
                self.settle(key, Verdict::Reset);
                return;
            }
            conn.interest = (!want.is_empty()).then_some(want);
        }
        if conn.wants_rx() && !conn.in_rx_queue {
            conn.in_rx_queue = true;
            self.rx_queue.push_back(key);
        }
    }

    fn remove(&mut self, key: ConnKey) -> Option<Connection> {
        let conn = self.conns.remove(&key)?;
        self.tokens.remove(&conn.token);
        match conn.initiator() {
            Initiator::Host => {
                self.host_conns = self.host_conns.saturating_sub(1);
                // Clients may wait in the backlog for this very slot.
                if self.listener_paused && self.can_accept_host() {
                    self.resume_listener();
                }
            }
            Initiator::Guest => {
                self.guest_conns = self.guest_conns.saturating_sub(1);
                if let Entry::Occupied(mut e) = self.guest_per_port.entry(key.local_port) {
                    *e.get_mut() -= 1;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
            }
        }
        if conn.interest.is_some() {
            let _ = self.epoll.ctl(
                ControlOperation::Delete,
                conn.stream().as_raw_fd(),
                EpollEvent::default(),
            );
        }
        Some(conn)
    }

    fn push_control(&mut self, hdr: Header) {
        if self.control.len() >= MAX_CONTROL {
            debug!(
                "vsock: control queue full, dropping {:?}",
                Op::from_wire(hdr.op)
            );
            return;
        }
        self.control.push_back(hdr);
    }

    fn alloc_token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn alloc_host_port(&mut self, peer_port: u32) -> u32 {
        loop {
            let port = self.next_host_port;
            self.next_host_port = port.checked_add(1).unwrap_or(FIRST_HOST_PORT);
            let key = ConnKey {
                local_port: port,
                peer_port,
            };
            if !self.conns.contains_key(&key) {
                return port;
            }
        }
    }

    /// Handles whatever the host sockets have reported, without blocking.
    pub fn handle_host_events(&mut self) -> Result<(), DeviceError> {
        let mut events = [EpollEvent::default(); 64];
        for _ in 0..MAX_EVENT_ROUNDS {
            let n = match self.epoll.wait(0, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DeviceError::Epoll(e)),
            };
            for ev in &events[..n] {
                self.on_host_event(ev.data(), ev.event_set());
            }
            if n < events.len() {
                break;
            }
        }
        Ok(())
    }

    fn on_host_event(&mut self, token: u64, events: EventSet) {
        match token {
            TOKEN_LISTENER => self.accept_host(),
            TOKEN_TIMER => self.on_tick(),
            _ if self.handshakes.contains_key(&token) => self.advance_handshake(token),
            _ => {
                let Some(&key) = self.tokens.get(&token) else {
                    return;
                };
                let Some(conn) = self.conns.get_mut(&key) else {
                    return;
                };
                let mut verdict = Verdict::Keep;
                let failed = EventSet::ERROR | EventSet::HANG_UP;
                if conn.has_tx_backlog() && events.intersects(EventSet::OUT | failed) {
                    verdict = conn.on_host_writable();
                }
                if verdict == Verdict::Keep && events.intersects(EventSet::IN | failed) {
                    conn.on_host_readable();
                }
                self.settle(key, verdict);
            }
        }
    }

    /// Whether another host client may be taken from the backlog. Handshakes count against the
    /// host's cap, so that every CONNECT line that completes finds a slot.
    fn can_accept_host(&self) -> bool {
        self.handshakes.len() < MAX_HANDSHAKES
            && self.handshakes.len() + self.host_conns < self.limits.host
    }

    fn accept_host(&mut self) {
        loop {
            if !self.can_accept_host() {
                // A burst of clients waits in the socket's backlog rather than being turned
                // away: the listener is watched again as handshakes finish or host connections
                // close (or at the tick).
                self.pause_listener();
                return;
            }
            let stream = match self.listener.accept() {
                Ok(Some(stream)) => stream,
                Ok(None) => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    // Typically out of fds; the listener would stay readable and spin.
                    warn!("vsock: accept failed, pausing the host socket for a while: {e}");
                    self.pause_listener();
                    return;
                }
            };
            let token = self.alloc_token();
            let ev = EpollEvent::new(EventSet::IN, token);
            if let Err(e) = self
                .epoll
                .ctl(ControlOperation::Add, stream.as_raw_fd(), ev)
            {
                warn!("vsock: cannot watch a host connection: {e}");
                continue;
            }
            let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
            self.handshakes
                .insert(token, Handshake::new(stream, deadline));
            self.arm_timer();
            self.advance_handshake(token);
        }
    }

    fn advance_handshake(&mut self, token: u64) {
        let Some(hs) = self.handshakes.get_mut(&token) else {
            return;
        };
        let status = hs.poll();
        if status == HandshakeStatus::Pending {
            return;
        }
        let Some(hs) = self.handshakes.remove(&token) else {
            return;
        };
        let _ = self.epoll.ctl(
            ControlOperation::Delete,
            hs.stream().as_raw_fd(),
            EpollEvent::default(),
        );
        if let HandshakeStatus::Connect(port) = status {
            self.connect_for_host(hs.into_stream(), port);
        }
        if self.listener_paused
            && self.handshakes.len() < MAX_HANDSHAKES / 2
            && self.can_accept_host()
        {
            self.resume_listener();
        }
    }

    fn resume_listener(&mut self) {
        let fd = self.listener.listener().as_raw_fd();
        let ev = EpollEvent::new(EventSet::IN, TOKEN_LISTENER);
        if self.epoll.ctl(ControlOperation::Add, fd, ev).is_ok() {
            self.listener_paused = false;
        }
    }

    fn pause_listener(&mut self) {
        let fd = self.listener.listener().as_raw_fd();
        if self
            .epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default())
            .is_ok()
        {
            self.listener_paused = true;
            self.arm_timer();
        }
    }

    fn arm_timer(&mut self) {
        if self.timer_armed {
            return;
        }
        match self.timer.reset(TICK, Some(TICK)) {
            Ok(()) => self.timer_armed = true,
            Err(e) => warn!("vsock: cannot arm the timeout timer: {e}"),
        }
    }

    /// Once a second while something can time out: expired handshakes and unanswered host
    /// CONNECTs are dropped, and a paused listener is tried again.
    fn on_tick(&mut self) {
        // Non-blocking, and the count does not matter.
        let _ = self.timer.wait();
        let now = Instant::now();
        let expired: Vec<u64> = self
            .handshakes
            .iter()
            .filter(|(_, hs)| hs.deadline <= now)
            .map(|(&t, _)| t)
            .collect();
        for token in expired {
            if let Some(hs) = self.handshakes.remove(&token) {
                let _ = self.epoll.ctl(
                    ControlOperation::Delete,
                    hs.stream().as_raw_fd(),
                    EpollEvent::default(),
                );
            }
        }
        let mut connecting = false;
        let mut expired = Vec::new();
        for (key, conn) in &self.conns {
            match conn.deadline() {
                Some(d) if d <= now => expired.push(*key),
                Some(_) => connecting = true,
                None => {}
            }
        }
        for key in expired {
            debug!(
                "vsock: guest did not answer CONNECT to port {}",
                key.peer_port
            );
            self.settle(key, Verdict::Reset);
        }
        if self.listener_paused && self.can_accept_host() {
            self.resume_listener();
        }
        if !connecting && self.handshakes.is_empty() && !self.listener_paused {
            match self.timer.clear() {
                Ok(()) => self.timer_armed = false,
                Err(e) => warn!("vsock: cannot disarm the timeout timer: {e}"),
            }
        }
    }
}

/// The device thread must never block on an fd, not even on a timer tick reported once too often.
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with flag arguments only; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AsRawFd for VsockDevice {
    /// Readable whenever a host socket needs attention: call `handle_host_events`, then
    /// `process_rx`.
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}
