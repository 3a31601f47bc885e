//! The device driven through virtio-queue's mock split queues, as a guest driver would, with
//! real unix sockets on the host side.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::credit::BUF_ALLOC;
use super::device::{Limits, VsockDevice};
use super::host::port_path;
use super::proto::*;
use super::VsockConfig;

const GUEST_CID: u64 = 3;
const QSIZE: u16 = 256;
const MEM_SIZE: u64 = 32 << 20;
const BUF_START: u64 = 0x10_0000;
const TX_BASE: u64 = 0x1_0000;
const USED_OFFSET: u64 = 0x4000;
/// What Linux 6.1.63+ posts: one descriptor for header and a ~3.7 KiB payload.
const LINUX_RX: &[u32] = &[3776];

type Mem = GuestMemoryMmap<()>;

/// A guest driver's view: mock queues in guest memory, and the device under test.
struct Guest {
    mem: &'static Mem,
    rxq: MockSplitQueue<'static, Mem>,
    txq: MockSplitQueue<'static, Mem>,
    rx: Queue,
    tx: Queue,
    rx_next_desc: u16,
    tx_next_desc: u16,
    rx_used_seen: u16,
    tx_used_seen: u16,
    rx_outstanding: usize,
    rx_chains: HashMap<u16, Vec<(u64, u32)>>,
    next_buf: u64,
    /// The guest socket layer's credit: what it advertises and has consumed.
    buf_alloc: u32,
    fwd_cnt: u32,
    /// Descriptor sizes of the RX chains the guest posts.
    rx_layout: Vec<u32>,
    dev: VsockDevice,
    uds: PathBuf,
    _dir: tempfile::TempDir,
}

type Packet = (Header, Vec<u8>);

impl Guest {
    fn new() -> Guest {
        Guest::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Guest {
        let mem: &'static Mem = Box::leak(Box::new(
            Mem::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap(),
        ));
        let rxq = MockSplitQueue::create(mem, GuestAddress(0), QSIZE);
        let txq = MockSplitQueue::create(mem, GuestAddress(TX_BASE), QSIZE);
        // The mock lays its used ring over the second half of the avail ring, so each used ring
        // goes to a page of its own.
        let mut rx: Queue = rxq.create_queue().unwrap();
        rx.try_set_used_ring_address(GuestAddress(USED_OFFSET))
            .unwrap();
        let mut tx: Queue = txq.create_queue().unwrap();
        tx.try_set_used_ring_address(GuestAddress(TX_BASE + USED_OFFSET))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("v.sock");
        let config = VsockConfig {
            guest_cid: GUEST_CID,
            uds_path: uds.clone(),
        };
        let dev = VsockDevice::with_limits(&config, limits).unwrap();
        Guest {
            mem,
            rxq,
            txq,
            rx,
            tx,
            rx_next_desc: 0,
            tx_next_desc: 0,
            rx_used_seen: 0,
            tx_used_seen: 0,
            rx_outstanding: 0,
            rx_chains: HashMap::new(),
            next_buf: BUF_START,
            buf_alloc: 64 * 1024,
            fwd_cnt: 0,
            rx_layout: LINUX_RX.to_vec(),
            dev,
            uds,
            _dir: dir,
        }
    }

    fn alloc(&mut self, len: u32) -> u64 {
        if self.next_buf + u64::from(len) > MEM_SIZE {
            self.next_buf = BUF_START;
        }
        let addr = self.next_buf;
        self.next_buf += u64::from(len).next_multiple_of(64);
        addr
    }

    fn listen(&self, port: u32) -> UnixListener {
        UnixListener::bind(port_path(&self.uds, port)).unwrap()
    }

    fn hdr(&self, op: Op, src_port: u32, dst_port: u32) -> Header {
        Header {
            src_cid: GUEST_CID,
            dst_cid: HOST_CID,
            src_port,
            dst_port,
            type_: TYPE_STREAM,
            op: op as u16,
            buf_alloc: self.buf_alloc,
            fwd_cnt: self.fwd_cnt,
            ..Header::default()
        }
    }

    /// Queues descriptors as one chain on a queue and returns the head index.
    fn add_chain(
        q: &MockSplitQueue<'static, Mem>,
        next: &mut u16,
        descs: &[(u64, u32, u16)],
    ) -> u16 {
        let n = descs.len() as u16;
        if *next + n > QSIZE {
            *next = 0;
        }
        let head = *next;
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let last = i + 1 == descs.len();
                let flags = if last {
                    flags
                } else {
                    flags | VRING_DESC_F_NEXT as u16
                };
                let next_idx = if last { 0 } else { head + i as u16 + 1 };
                RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next_idx))
            })
            .collect();
        for (i, d) in raw.into_iter().enumerate() {
            q.desc_table().store(head + i as u16, d).unwrap();
        }
        // The avail ring by hand: the mock's helper does not wrap around the ring.
        let avail = q.avail().idx().load();
        q.avail()
            .ring()
            .ref_at((avail % QSIZE) as usize)
            .unwrap()
            .store(head);
        q.avail().idx().store(avail.wrapping_add(1));
        *next += n;
        head
    }

    /// Puts a packet on TX split into descriptors of the given sizes (header and payload
    /// concatenated), and lets the device process it.
    fn send_split(&mut self, hdr: Header, payload: &[u8], sizes: &[u32]) {
        let mut bytes = hdr.to_bytes().to_vec();
        bytes.extend_from_slice(payload);
        assert_eq!(sizes.iter().sum::<u32>() as usize, bytes.len());
        let mut off = 0usize;
        let mut descs = Vec::new();
        for &size in sizes {
            let addr = self.alloc(size);
            self.mem
                .write_slice(&bytes[off..off + size as usize], GuestAddress(addr))
                .unwrap();
            off += size as usize;
            descs.push((addr, size, 0));
        }
        self.send_raw(&descs);
    }

    fn send_raw(&mut self, descs: &[(u64, u32, u16)]) {
        Self::add_chain(&self.txq, &mut self.tx_next_desc, descs);
        self.dev.process_tx(self.mem, &mut self.tx).unwrap();
        let used = self.used_idx(TX_BASE + USED_OFFSET);
        assert_eq!(
            used,
            self.tx_used_seen.wrapping_add(1),
            "TX chain not returned"
        );
        self.tx_used_seen = used;
    }

    /// Header and payload in one descriptor, as Linux 6.1.63+ may send them.
    fn send(&mut self, hdr: Header, payload: &[u8]) {
        self.send_split(hdr, payload, &[(HEADER_SIZE + payload.len()) as u32]);
    }

    /// Header and payload in two descriptors, as older Linux sends them.
    fn send2(&mut self, hdr: Header, payload: &[u8]) {
        self.send_split(hdr, payload, &[HEADER_SIZE as u32, payload.len() as u32]);
    }

    fn send_data(&mut self, src_port: u32, dst_port: u32, data: &[u8]) {
        let mut h = self.hdr(Op::Rw, src_port, dst_port);
        h.len = data.len() as u32;
        self.send(h, data);
    }

    fn add_rx(&mut self, sizes: &[u32]) {
        let descs: Vec<(u64, u32, u16)> = sizes
            .iter()
            .map(|&s| (self.alloc(s), s, VRING_DESC_F_WRITE as u16))
            .collect();
        let head = Self::add_chain(&self.rxq, &mut self.rx_next_desc, &descs);
        self.rx_chains
            .insert(head, descs.iter().map(|&(a, l, _)| (a, l)).collect());
        self.rx_outstanding += 1;
    }

    /// Tops up RX buffers, runs the device, and returns what it put there.
    fn recv(&mut self) -> Vec<Packet> {
        while self.rx_outstanding < 32 {
            self.add_rx(&self.rx_layout.clone());
        }
        self.dev.handle_host_events().unwrap();
        self.dev.process_rx(self.mem, &mut self.rx).unwrap();
        self.take_rx()
    }

    /// Receives until the device has nothing more.
    fn drain(&mut self) -> Vec<Packet> {
        let mut all = Vec::new();
        loop {
            let pkts = self.recv();
            if pkts.is_empty() {
                return all;
            }
            all.extend(pkts);
        }
    }

    fn take_rx(&mut self) -> Vec<Packet> {
        let mut out = Vec::new();
        let used_idx = self.used_idx(USED_OFFSET);
        while self.rx_used_seen != used_idx {
            let slot = u64::from(self.rx_used_seen % QSIZE);
            let elem: [u32; 2] = self
                .mem
                .read_obj(GuestAddress(USED_OFFSET + 4 + 8 * slot))
                .unwrap();
            let (id, len) = (elem[0], elem[1]);
            self.rx_used_seen = self.rx_used_seen.wrapping_add(1);
            self.rx_outstanding -= 1;
            let chain = self
                .rx_chains
                .remove(&(id as u16))
                .unwrap_or_else(|| panic!("used id {id} was not posted"));
            let mut bytes = Vec::new();
            for (addr, len) in chain {
                let mut b = vec![0u8; len as usize];
                self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
                bytes.extend_from_slice(&b);
            }
            assert!(len as usize <= bytes.len(), "used length beyond the buffer");
            bytes.truncate(len as usize);
            if bytes.len() < HEADER_SIZE {
                out.push((Header::default(), bytes));
                continue;
            }
            let hdr = Header::from_bytes(bytes[..HEADER_SIZE].try_into().unwrap());
            let payload = bytes[HEADER_SIZE..].to_vec();
            assert_eq!(
                hdr.len as usize,
                payload.len(),
                "len field and used length disagree"
            );
            assert_eq!((hdr.src_cid, hdr.dst_cid), (HOST_CID, GUEST_CID));
            out.push((hdr, payload));
        }
        out
    }

    fn used_idx(&self, used_ring: u64) -> u16 {
        self.mem.read_obj(GuestAddress(used_ring + 2)).unwrap()
    }

    /// The guest socket layer consumed the payload: count it for our credit.
    fn consume(&mut self, pkts: &[Packet]) -> Vec<u8> {
        let mut data = Vec::new();
        for (h, p) in pkts {
            if h.op == Op::Rw as u16 {
                data.extend_from_slice(p);
            }
        }
        self.fwd_cnt = self.fwd_cnt.wrapping_add(data.len() as u32);
        data
    }

    /// A guest connect to host port `port` answered by `listener`.
    fn connect_from_guest(&mut self, listener: &UnixListener, src: u32, port: u32) -> UnixStream {
        self.send(self.hdr(Op::Request, src, port), &[]);
        let pkts = self.recv();
        assert_eq!(ops(&pkts), [Op::Response]);
        assert_eq!((pkts[0].0.src_port, pkts[0].0.dst_port), (port, src));
        assert_eq!(pkts[0].0.buf_alloc, BUF_ALLOC);
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// A guest connect to host port `port` that the device turns away before it reaches
    /// `listener`.
    fn refused_from_guest(&mut self, listener: &UnixListener, src: u32, port: u32) {
        self.send(self.hdr(Op::Request, src, port), &[]);
        let pkts = self.recv();
        assert_eq!(ops(&pkts), [Op::Rst], "guest connect to {port} not refused");
        assert_eq!((pkts[0].0.src_port, pkts[0].0.dst_port), (port, src));
        listener.set_nonblocking(true).unwrap();
        let e = listener.accept().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "refused, yet connected");
        listener.set_nonblocking(false).unwrap();
    }

    /// A host CONNECT to guest port `port`, accepted by the guest; returns the host socket and
    /// the host-side port.
    fn connect_from_host(&mut self, port: u32) -> (UnixStream, u32) {
        let mut host = UnixStream::connect(&self.uds).unwrap();
        host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(host, "CONNECT {port}").unwrap();
        let pkts = self.recv();
        assert_eq!(ops(&pkts), [Op::Request]);
        let local = pkts[0].0.src_port;
        assert_eq!(pkts[0].0.dst_port, port);
        assert!(local >= 1 << 30);
        self.send(self.hdr(Op::Response, port, local), &[]);
        assert_eq!(read_line(&mut host), format!("OK {local}\n"));
        (host, local)
    }
}

fn ops(pkts: &[Packet]) -> Vec<Op> {
    pkts.iter()
        .map(|(h, _)| Op::from_wire(h.op).unwrap())
        .collect()
}

fn read_line(s: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 {
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    String::from_utf8(line).unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn read_exactly(s: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).unwrap();
    v
}

#[test]
fn guest_connect_reaches_host_listener() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let _s = g.connect_from_guest(&l, 1234, 5000);
    assert_eq!(g.dev.connection_count(), 1);
}

#[test]
fn guest_connect_without_listener_gets_rst() {
    let mut g = Guest::new();
    g.send(g.hdr(Op::Request, 1234, 6000), &[]);
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::Rst]);
    assert_eq!((pkts[0].0.src_port, pkts[0].0.dst_port), (6000, 1234));
    assert_eq!(g.dev.connection_count(), 0);
}

#[test]
fn host_connect_handshake() {
    let mut g = Guest::new();
    let (mut host, local) = g.connect_from_host(1024);
    // Bytes the host sent right behind its CONNECT line are stream data, not lost.
    host.write_all(b"hello").unwrap();
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::Rw]);
    assert_eq!((pkts[0].0.src_port, pkts[0].0.dst_port), (local, 1024));
    assert_eq!(pkts[0].1, b"hello");
}

#[test]
fn host_data_sent_with_the_connect_line_is_kept() {
    let mut g = Guest::new();
    let mut host = UnixStream::connect(&g.uds).unwrap();
    host.write_all(b"CONNECT 77\nearly").unwrap();
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::Request]);
    let local = pkts[0].0.src_port;
    g.send(g.hdr(Op::Response, 77, local), &[]);
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::Rw]);
    assert_eq!(pkts[0].1, b"early");
    assert_eq!(read_line(&mut host), format!("OK {local}\n"));
}

#[test]
fn host_connect_refused_by_guest_closes_host_socket() {
    let mut g = Guest::new();
    let mut host = UnixStream::connect(&g.uds).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    host.write_all(b"CONNECT 9\n").unwrap();
    let pkts = g.recv();
    let local = pkts[0].0.src_port;
    g.send(g.hdr(Op::Rst, 9, local), &[]);
    assert_eq!(host.read(&mut [0u8; 16]).unwrap(), 0);
    assert_eq!(g.dev.connection_count(), 0);
}

#[test]
fn bad_connect_lines_are_closed() {
    let mut g = Guest::new();
    let mut host = UnixStream::connect(&g.uds).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    host.write_all(b"HELLO 9\n").unwrap();
    assert!(g.recv().is_empty());
    assert_eq!(host.read(&mut [0u8; 16]).unwrap(), 0);
}

#[test]
fn guest_to_host_data_in_any_chain_layout() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let mut s = g.connect_from_guest(&l, 1234, 5000);
    let data = pattern(3000, 1);
    let mut h = g.hdr(Op::Rw, 1234, 5000);
    h.len = data.len() as u32;
    g.send(h, &data);
    g.send2(h, &data);
    // Header split across descriptors, payload across three.
    g.send_split(h, &data, &[10, 20, 14 + 1000, 1000, 1000]);
    for _ in 0..3 {
        assert_eq!(read_exactly(&mut s, data.len()), data);
    }
    // Padding after the announced payload is ignored.
    let mut padded = data.clone();
    padded.extend_from_slice(&[0xee; 100]);
    let mut bytes = h.to_bytes().to_vec();
    bytes.extend_from_slice(&padded);
    let addr = g.alloc(bytes.len() as u32);
    g.mem.write_slice(&bytes, GuestAddress(addr)).unwrap();
    g.send_raw(&[(addr, bytes.len() as u32, 0)]);
    assert_eq!(read_exactly(&mut s, data.len()), data);
    assert!(g.recv().is_empty(), "nothing owed to the guest yet");
}

#[test]
fn host_to_guest_data_in_any_rx_layout() {
    for (i, layout) in [
        &[3776u32][..],
        &[44, 4096][..],
        &[20, 24, 100, 3000][..],
        &[30, 1000][..],
    ]
    .into_iter()
    .enumerate()
    {
        let mut g = Guest::new();
        g.rx_layout = layout.to_vec();
        let l = g.listen(5000);
        let mut s = g.connect_from_guest(&l, 1234, 5000);
        let data = pattern(20_000, i as u8);
        s.write_all(&data).unwrap();
        let mut got = Vec::new();
        while got.len() < data.len() {
            let pkts = g.recv();
            assert!(!pkts.is_empty(), "device stalled with data pending");
            let room = layout.iter().sum::<u32>() - HEADER_SIZE as u32;
            assert!(pkts.iter().all(|(h, _)| h.len <= room));
            got.extend(g.consume(&pkts));
            // The guest tells the device about the space it freed.
            g.send(g.hdr(Op::CreditUpdate, 1234, 5000), &[]);
        }
        assert_eq!(got, data, "layout {layout:?}");
    }
}

#[test]
fn host_to_guest_respects_guest_credit() {
    let mut g = Guest::new();
    g.buf_alloc = 4096;
    let l = g.listen(5000);
    let mut s = g.connect_from_guest(&l, 1234, 5000);
    let data = pattern(10_000, 7);
    s.write_all(&data).unwrap();
    let first = g.recv();
    let got = g.consume(&first);
    assert_eq!(got.len(), 4096, "device sent past the guest's buf_alloc");
    assert!(g.recv().is_empty(), "no credit, nothing more");
    // Credit returns: the rest flows.
    g.send(g.hdr(Op::CreditUpdate, 1234, 5000), &[]);
    let mut all = got;
    let pkts = g.recv();
    all.extend(g.consume(&pkts));
    g.send(g.hdr(Op::CreditUpdate, 1234, 5000), &[]);
    let pkts = g.recv();
    all.extend(g.consume(&pkts));
    assert_eq!(all, data);
}

#[test]
fn guest_to_host_credit_is_enforced_and_updated() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let s = g.connect_from_guest(&l, 1234, 5000);
    // The host does not read: the device buffers, then resets a guest that overruns its credit.
    let chunk = pattern(MAX_PAYLOAD, 3);
    let mut sent = 0usize;
    let mut reset = false;
    for _ in 0..32 {
        g.send_data(1234, 5000, &chunk);
        sent += chunk.len();
        let pkts = g.recv();
        if ops(&pkts).contains(&Op::Rst) {
            reset = true;
            break;
        }
        // Whatever fwd_cnt the device reports, the host must already have it.
        for (h, _) in &pkts {
            assert!(h.fwd_cnt as usize <= sent);
        }
    }
    assert!(reset, "a guest ignoring credit was never stopped");
    assert!(sent > BUF_ALLOC as usize);
    drop(s);

    // A well-behaved guest: stop at the credit, host reads, a CREDIT_UPDATE arrives.
    let l = g.listen(5001);
    let mut s = g.connect_from_guest(&l, 1235, 5001);
    let mut sent = 0usize;
    while sent < BUF_ALLOC as usize {
        g.send_data(1235, 5001, &chunk);
        sent += chunk.len();
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0usize;
    let mut fwd = 0u32;
    while got < sent {
        let mut buf = vec![0u8; 64 * 1024];
        got += s.read(&mut buf).unwrap();
        for (h, _) in g.recv() {
            assert_eq!(h.op, Op::CreditUpdate as u16);
            fwd = h.fwd_cnt;
        }
    }
    // The guest has heard of enough freed space to never stall.
    let unreported = sent - fwd as usize;
    assert!(
        fwd > 0 && unreported < BUF_ALLOC as usize / 2,
        "fwd_cnt {fwd} of {sent}"
    );
}

#[test]
fn credit_request_is_answered() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let _s = g.connect_from_guest(&l, 1234, 5000);
    g.send(g.hdr(Op::CreditRequest, 1234, 5000), &[]);
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::CreditUpdate]);
    assert_eq!(pkts[0].0.buf_alloc, BUF_ALLOC);
    assert_eq!(pkts[0].0.fwd_cnt, 0);
}

#[test]
fn half_close_both_ways() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let mut s = g.connect_from_guest(&l, 1234, 5000);
    g.send_data(1234, 5000, b"last words");
    let mut h = g.hdr(Op::Shutdown, 1234, 5000);
    h.flags = SHUTDOWN_SEND;
    g.send(h, &[]);
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"last words", "host sees the data, then EOF");
    // The other direction still works.
    s.write_all(b"reply").unwrap();
    let pkts = g.recv();
    assert_eq!(g.consume(&pkts), b"reply");
    // Host done too: the guest hears SHUTDOWN or RST, and the connection is gone.
    s.shutdown(Shutdown::Write).unwrap();
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::Rst]);
    assert_eq!(g.dev.connection_count(), 0);
}

#[test]
fn host_half_close_reaches_guest_as_shutdown() {
    let mut g = Guest::new();
    let (mut host, local) = g.connect_from_host(1024);
    host.write_all(b"bye").unwrap();
    host.shutdown(Shutdown::Write).unwrap();
    let pkts = g.drain();
    assert_eq!(ops(&pkts), [Op::Rw, Op::Shutdown]);
    assert_eq!(pkts[1].0.flags, SHUTDOWN_SEND);
    // The guest can still send.
    g.send_data(1024, local, b"still here");
    assert_eq!(read_exactly(&mut host, 10), b"still here");
    // Guest closes: RST answers, and the host sees EOF.
    let mut h = g.hdr(Op::Shutdown, 1024, local);
    h.flags = SHUTDOWN_BOTH;
    g.send(h, &[]);
    assert_eq!(ops(&g.recv()), [Op::Rst]);
    assert_eq!(host.read(&mut [0u8; 8]).unwrap(), 0);
}

#[test]
fn guest_close_flushes_buffered_data_first() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let mut s = g.connect_from_guest(&l, 1234, 5000);
    let chunk = pattern(MAX_PAYLOAD, 9);
    // As much as the credit allows, more than the host socket takes unread.
    for _ in 0..(BUF_ALLOC as usize / MAX_PAYLOAD) {
        g.send_data(1234, 5000, &chunk);
    }
    let mut h = g.hdr(Op::Shutdown, 1234, 5000);
    h.flags = SHUTDOWN_BOTH;
    g.send(h, &[]);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut rst = false;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        rst |= ops(&g.recv()).contains(&Op::Rst);
    }
    rst |= ops(&g.recv()).contains(&Op::Rst);
    assert_eq!(got.len(), BUF_ALLOC as usize);
    assert!(rst, "close not acknowledged");
    assert_eq!(g.dev.connection_count(), 0);
}

#[test]
fn host_closing_mid_transfer() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let mut s = g.connect_from_guest(&l, 1234, 5000);
    s.write_all(&pattern(5000, 1)).unwrap();
    drop(s);
    let pkts = g.drain();
    assert_eq!(g.consume(&pkts), pattern(5000, 1));
    assert_eq!(ops(&pkts).last(), Some(&Op::Shutdown));
    // The guest, still writing, gets RST: the host socket is gone.
    g.send_data(1234, 5000, b"anyone?");
    assert_eq!(ops(&g.recv()), [Op::Rst]);
    assert_eq!(g.dev.connection_count(), 0);
}

#[test]
fn guest_rst_closes_host_socket() {
    let mut g = Guest::new();
    let (mut host, local) = g.connect_from_host(1024);
    g.send(g.hdr(Op::Rst, 1024, local), &[]);
    assert_eq!(host.read(&mut [0u8; 8]).unwrap(), 0);
    assert!(g.recv().is_empty(), "no answer to an RST");
    assert_eq!(g.dev.connection_count(), 0);
}

#[test]
fn many_connections() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let mut socks = Vec::new();
    for i in 0..50 {
        socks.push(g.connect_from_guest(&l, 2000 + i, 5000));
    }
    for (i, s) in socks.iter_mut().enumerate() {
        s.write_all(&pattern(100, i as u8)).unwrap();
    }
    let mut per_port: HashMap<u32, Vec<u8>> = HashMap::new();
    for _ in 0..10 {
        for (h, p) in g.recv() {
            per_port.entry(h.dst_port).or_default().extend(p);
        }
    }
    for i in 0..50u32 {
        assert_eq!(per_port[&(2000 + i)], pattern(100, i as u8));
    }
}

#[test]
fn malformed_tx_packets_do_not_break_the_device() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let mut s = g.connect_from_guest(&l, 1234, 5000);

    // Shorter than a header.
    let addr = g.alloc(20);
    g.send_raw(&[(addr, 20, 0)]);
    // len larger than the chain holds.
    let mut h = g.hdr(Op::Rw, 1234, 5000);
    h.len = 5000;
    g.send_split(h, &[1u8; 100], &[144]);
    // len over the protocol maximum.
    h.len = u32::MAX;
    g.send(h, &[]);
    // Descriptors outside guest memory, and wrapping the address space.
    g.send_raw(&[(MEM_SIZE - 10, 44, 0)]);
    g.send_raw(&[(u64::MAX - 5, 100, 0)]);
    g.send_raw(&[(0x20_0000, 44, 0), (MEM_SIZE + 4096, 100, 0)]);
    // A write-only descriptor where a header should be.
    let addr = g.alloc(44);
    g.send_raw(&[(addr, 44, VRING_DESC_F_WRITE as u16)]);
    // Wrong CIDs are dropped without an answer.
    let mut h = g.hdr(Op::Request, 1, 5000);
    h.src_cid = 7;
    g.send(h, &[]);
    h.src_cid = GUEST_CID;
    h.dst_cid = 5;
    g.send(h, &[]);
    assert!(g.recv().is_empty());

    // The connection survived all that.
    g.send_data(1234, 5000, b"ok");
    assert_eq!(read_exactly(&mut s, 2), b"ok");

    // Unknown op on a live connection ends it; on no connection it gets RST.
    let mut h = g.hdr(Op::Rw, 1234, 5000);
    h.op = 99;
    g.send(h, &[]);
    assert_eq!(ops(&g.recv()), [Op::Rst]);
    assert_eq!(s.read(&mut [0u8; 4]).unwrap(), 0);
    let mut h = g.hdr(Op::Rw, 1, 2);
    h.op = 0;
    g.send(h, &[]);
    assert_eq!(ops(&g.recv()), [Op::Rst]);
    // Unknown socket type: RST (no SEQPACKET here).
    let mut h = g.hdr(Op::Request, 1, 5000);
    h.type_ = 2;
    g.send(h, &[]);
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::Rst]);
    assert_eq!(
        pkts[0].0.type_, 2,
        "RST answers in the sender's socket type"
    );
    // Data on a port pair that is not connected.
    g.send_data(4242, 5000, b"who?");
    assert_eq!(ops(&g.recv()), [Op::Rst]);
    // An RST for nothing gets no answer (no RST storms).
    g.send(g.hdr(Op::Rst, 4242, 5000), &[]);
    assert!(g.recv().is_empty());
}

#[test]
fn protocol_violations_reset_the_connection() {
    let mut g = Guest::new();
    // Data before the guest accepted a host connect.
    let mut host = UnixStream::connect(&g.uds).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    host.write_all(b"CONNECT 80\n").unwrap();
    let local = g.recv()[0].0.src_port;
    g.send_data(80, local, b"too early");
    assert_eq!(ops(&g.recv()), [Op::Rst]);
    assert_eq!(host.read(&mut [0u8; 4]).unwrap(), 0);
    // Data after the guest said it would send no more.
    let l = g.listen(5000);
    let _s = g.connect_from_guest(&l, 1234, 5000);
    let mut h = g.hdr(Op::Shutdown, 1234, 5000);
    h.flags = SHUTDOWN_SEND;
    g.send(h, &[]);
    g.send_data(1234, 5000, b"more");
    assert_eq!(ops(&g.recv()), [Op::Rst]);
    // A second REQUEST on a live connection.
    let _s = g.connect_from_guest(&l, 1236, 5000);
    g.send(g.hdr(Op::Request, 1236, 5000), &[]);
    assert_eq!(ops(&g.recv()), [Op::Rst]);
    assert_eq!(g.dev.connection_count(), 0);
}

#[test]
fn bad_rx_buffers_are_returned_not_fatal() {
    let mut g = Guest::new();
    g.send(g.hdr(Op::Request, 1, 6000), &[]);
    // Too small for a header, outside memory, and read-only: each is handed back empty.
    g.add_rx(&[20]);
    let addr = MEM_SIZE - 8;
    Guest::add_chain(
        &g.rxq,
        &mut g.rx_next_desc,
        &[(addr, 64, VRING_DESC_F_WRITE as u16)],
    );
    g.rx_chains.insert(g.rx_next_desc - 1, vec![]);
    g.rx_outstanding += 1;
    let ro = g.alloc(64);
    Guest::add_chain(&g.rxq, &mut g.rx_next_desc, &[(ro, 64, 0)]);
    g.rx_chains.insert(g.rx_next_desc - 1, vec![(ro, 64)]);
    g.rx_outstanding += 1;
    let pkts = g.recv();
    assert_eq!(pkts.len(), 4);
    assert!(pkts[..3].iter().all(|(_, p)| p.is_empty()));
    assert_eq!(ops(&pkts[3..]), [Op::Rst]);
}

#[test]
fn rx_waits_for_buffers_without_losing_data() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let mut s = g.connect_from_guest(&l, 1234, 5000);
    let data = pattern(40_000, 5);
    s.write_all(&data).unwrap();
    // Only two small buffers at a time.
    let mut got = Vec::new();
    for _ in 0..100 {
        g.add_rx(&[44 + 1000]);
        g.add_rx(&[44 + 1000]);
        g.dev.handle_host_events().unwrap();
        g.dev.process_rx(g.mem, &mut g.rx).unwrap();
        let pkts = g.take_rx();
        got.extend(g.consume(&pkts));
        g.send(g.hdr(Op::CreditUpdate, 1234, 5000), &[]);
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
}

#[test]
fn reset_drops_every_connection() {
    let mut g = Guest::new();
    let l = g.listen(5000);
    let mut s = g.connect_from_guest(&l, 1234, 5000);
    g.dev.reset();
    assert_eq!(g.dev.connection_count(), 0);
    assert_eq!(s.read(&mut [0u8; 4]).unwrap(), 0);
}

#[test]
fn host_socket_path_is_removed_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let uds = dir.path().join("v.sock");
    let config = VsockConfig {
        guest_cid: GUEST_CID,
        uds_path: uds.clone(),
    };
    let dev = VsockDevice::new(&config).unwrap();
    assert!(uds.exists());
    assert!(
        VsockDevice::new(&config).is_err(),
        "second device on a live socket"
    );
    drop(dev);
    assert!(!uds.exists());
    let e = UnixStream::connect(&uds).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn guest_connections_are_capped_per_port_and_in_all() {
    let mut g = Guest::new();
    let limits = Limits::default();
    let (flooded, other, third) = (g.listen(5000), g.listen(5001), g.listen(5002));
    let mut held = Vec::new();
    for i in 0..limits.guest_per_port as u32 {
        held.push(g.connect_from_guest(&flooded, 10_000 + i, 5000));
    }
    g.refused_from_guest(&flooded, 20_000, 5000);
    g.refused_from_guest(&flooded, 20_001, 5000);
    // The flood leaves the other ports their room, up to the guest's total.
    for i in 0..(limits.guest - limits.guest_per_port) as u32 {
        held.push(g.connect_from_guest(&other, 30_000 + i, 5001));
    }
    assert_eq!(g.dev.connection_count(), limits.guest);
    g.refused_from_guest(&third, 40_000, 5002);

    // The host still reaches its VM, with data both ways.
    let (mut host, local) = g.connect_from_host(1024);
    host.write_all(b"ping").unwrap();
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::Rw]);
    assert_eq!(pkts[0].1, b"ping");
    g.send_data(1024, local, b"pong");
    assert_eq!(read_exactly(&mut host, 4), b"pong");

    // A guest connection that ends gives its slot back, on its port and in all.
    g.send(g.hdr(Op::Rst, 10_000, 5000), &[]);
    held.push(g.connect_from_guest(&flooded, 20_002, 5000));
    g.refused_from_guest(&third, 40_001, 5002);
    assert_eq!(g.dev.connection_count(), limits.guest + 1);
}

#[test]
fn host_clients_past_the_host_cap_wait_for_a_slot() {
    let mut g = Guest::with_limits(Limits {
        host: 2,
        guest: 2,
        guest_per_port: 1,
    });
    let (_first, first_port) = g.connect_from_host(1024);
    let (_second, _) = g.connect_from_host(1024);
    // The third waits in the listener's backlog rather than being turned away.
    let mut third = UnixStream::connect(&g.uds).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    writeln!(third, "CONNECT 1024").unwrap();
    assert!(g.recv().is_empty(), "host connect past the host cap");
    // The guest's own cap is apart from the host's.
    let (a, b) = (g.listen(5000), g.listen(5001));
    let _a = g.connect_from_guest(&a, 1, 5000);
    let _b = g.connect_from_guest(&b, 2, 5001);
    assert_eq!(g.dev.connection_count(), 4);
    assert!(g.recv().is_empty(), "guest connections took a host slot");

    // One host connection ends: the waiting client gets its slot at once, not at the tick.
    g.send(g.hdr(Op::Rst, 1024, first_port), &[]);
    let pkts = g.recv();
    assert_eq!(ops(&pkts), [Op::Request]);
    let local = pkts[0].0.src_port;
    g.send(g.hdr(Op::Response, 1024, local), &[]);
    assert_eq!(read_line(&mut third), format!("OK {local}\n"));
    assert_eq!(g.dev.connection_count(), 4);
}
