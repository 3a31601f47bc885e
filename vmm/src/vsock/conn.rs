//! One vsock stream connection between a guest socket and a host unix socket.
//!
//! The connection never touches a queue: the device hands it packets from the guest and RX
//! buffers to fill, and reads back a [`Verdict`] on what to do with it next. Guest bytes the host
//! socket cannot take yet wait in `tx_buf`; the credit we give the guest bounds that buffer. Host
//! bytes are read only when the guest has credit and an RX buffer is at hand, so they stay in the
//! host socket, where back-pressure reaches the host process.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use virtio_queue::Reader;
use vm_memory::bitmap::BitmapSlice;
use vmm_sys_util::epoll::EventSet;

use super::credit::Credit;
use super::packet::RxBuffer;
use super::proto::{Header, Op, HOST_CID, SHUTDOWN_BOTH, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};

/// A connection is named by its two ports; the CIDs are fixed per device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// The host-side port: P for a guest connection to `<uds_path>_P`, an allocated port for
    /// host-initiated ones.
    pub local_port: u32,
    /// The guest-side port.
    pub peer_port: u32,
}

/// What the device should do with a connection after handing it an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Tell the guest RST and forget the connection: an error, or the normal end of a close.
    Reset,
    /// Forget the connection without a word: the guest already reset it.
    Forget,
}

/// Who opened a connection: the device counts each side against its own cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    Guest,
    Host,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Host-initiated, REQUEST queued or sent, waiting for the guest's RESPONSE.
    Connecting {
        deadline: Instant,
    },
    Established,
}

/// Control packets owed to the guest.
#[derive(Debug, Default)]
struct Owed {
    request: bool,
    response: bool,
    /// SHUTDOWN flags to send; 0 for none.
    shutdown: u32,
    credit_update: bool,
}

#[derive(Debug)]
pub struct Connection {
    key: ConnKey,
    guest_cid: u64,
    pub token: u64,
    stream: UnixStream,
    /// Kept apart from `state`, which forgets it once a host connect is established.
    initiator: Initiator,
    state: State,
    credit: Credit,
    /// Guest bytes the host socket has not taken yet.
    tx_buf: VecDeque<u8>,
    /// SHUTDOWN flags the guest sent.
    peer_shutdown: u32,
    /// The host socket reached EOF: the host will send nothing more.
    host_eof: bool,
    /// The guest's SEND shutdown has been passed on to the host socket.
    host_write_shut: bool,
    /// The host socket has signalled data that we have not read yet.
    readable: bool,
    owed: Owed,
    /// Device bookkeeping: queued for RX service, and the epoll interest registered now.
    pub in_rx_queue: bool,
    pub interest: Option<EventSet>,
}

impl Connection {
    /// A guest connect that reached a host listener: established at once, RESPONSE owed.
    pub fn guest_initiated(
        key: ConnKey,
        guest_cid: u64,
        stream: UnixStream,
        token: u64,
        request: &Header,
    ) -> Connection {
        let mut c = Connection::new(
            key,
            guest_cid,
            stream,
            token,
            Initiator::Guest,
            State::Established,
        );
        c.credit.update_peer(request);
        c.owed.response = true;
        c
    }

    /// A host `CONNECT`: REQUEST owed, established once the guest answers.
    pub fn host_initiated(
        key: ConnKey,
        guest_cid: u64,
        stream: UnixStream,
        token: u64,
        deadline: Instant,
    ) -> Connection {
        let mut c = Connection::new(
            key,
            guest_cid,
            stream,
            token,
            Initiator::Host,
            State::Connecting { deadline },
        );
        c.owed.request = true;
        c
    }

    fn new(
        key: ConnKey,
        guest_cid: u64,
        stream: UnixStream,
        token: u64,
        initiator: Initiator,
        state: State,
    ) -> Self {
        Connection {
            key,
            guest_cid,
            token,
            stream,
            initiator,
            state,
            credit: Credit::new(0, 0),
            tx_buf: VecDeque::new(),
            peer_shutdown: 0,
            host_eof: false,
            host_write_shut: false,
            readable: false,
            owed: Owed::default(),
            in_rx_queue: false,
            interest: None,
        }
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn initiator(&self) -> Initiator {
        self.initiator
    }

    /// When an unanswered REQUEST gives up.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Connecting { deadline } => Some(deadline),
            State::Established => None,
        }
    }

    /// An RST for the guest's side of this connection.
    pub fn rst(&mut self) -> Header {
        self.header(Op::Rst)
    }

    /// Handles a packet the guest sent on this connection; `payload` holds exactly `hdr.len`
    /// bytes, and `scratch` must hold at least `MAX_PAYLOAD`.
    pub fn on_guest_packet<B: BitmapSlice>(
        &mut self,
        hdr: &Header,
        payload: &mut Reader<'_, B>,
        scratch: &mut [u8],
    ) -> Verdict {
        self.credit.update_peer(hdr);
        let Some(op) = Op::from_wire(hdr.op) else {
            return Verdict::Reset;
        };
        match (op, &self.state) {
            (Op::Rst, _) => Verdict::Forget,
            (Op::Response, State::Connecting { .. }) => self.accepted_by_guest(),
            (Op::Rw, State::Established) => self.guest_data(hdr, payload, scratch),
            (Op::Shutdown, State::Established) => self.guest_shutdown(hdr.flags),
            // The new credit is already recorded; it may let host data flow again.
            (Op::CreditUpdate, _) => Verdict::Keep,
            (Op::CreditRequest, _) => {
                self.owed.credit_update = true;
                Verdict::Keep
            }
            // REQUEST on a live connection, a second RESPONSE, data or SHUTDOWN before the
            // handshake completed: the guest and we disagree on the state, so end it.
            _ => Verdict::Reset,
        }
    }

    fn accepted_by_guest(&mut self) -> Verdict {
        let line = format!("OK {}\n", self.key.local_port);
        // A fresh socket's buffer takes a short line whole; anything else means the host
        // process is gone.
        match write_retrying(&self.stream, line.as_bytes()) {
            Ok(n) if n == line.len() => {
                self.state = State::Established;
                Verdict::Keep
            }
            _ => Verdict::Reset,
        }
    }

    fn guest_data<B: BitmapSlice>(
        &mut self,
        hdr: &Header,
        payload: &mut Reader<'_, B>,
        scratch: &mut [u8],
    ) -> Verdict {
        if self.peer_shutdown & SHUTDOWN_SEND != 0 || !self.credit.receive(hdr.len) {
            return Verdict::Reset;
        }
        let Some(data) = scratch.get_mut(..hdr.len as usize) else {
            return Verdict::Reset;
        };
        if payload.read_exact(data).is_err() {
            return Verdict::Reset;
        }
        let mut written = 0;
        if self.tx_buf.is_empty() {
            match write_retrying(&self.stream, data) {
                Ok(n) => written = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Verdict::Reset,
            }
        }
        self.tx_buf.extend(&data[written..]);
        self.forwarded(written);
        Verdict::Keep
    }

    fn guest_shutdown(&mut self, flags: u32) -> Verdict {
        self.peer_shutdown |= flags & SHUTDOWN_BOTH;
        if self.tx_buf.is_empty() {
            self.drained()
        } else {
            Verdict::Keep
        }
    }

    /// The host socket reported readiness for reading, hang-up or error; the read itself waits
    /// for an RX buffer.
    pub fn on_host_readable(&mut self) {
        self.readable = true;
    }

    pub fn has_tx_backlog(&self) -> bool {
        !self.tx_buf.is_empty()
    }

    /// The host socket can take more of `tx_buf`.
    pub fn on_host_writable(&mut self) -> Verdict {
        let mut total = 0;
        while !self.tx_buf.is_empty() {
            let (a, b) = self.tx_buf.as_slices();
            match self
                .stream
                .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            {
                Ok(0) => return Verdict::Reset,
                Ok(n) => {
                    self.tx_buf.drain(..n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Verdict::Reset,
            }
        }
        self.forwarded(total);
        if self.tx_buf.is_empty() {
            self.drained()
        } else {
            Verdict::Keep
        }
    }

    fn forwarded(&mut self, n: usize) {
        // `n` is bounded by the credit we gave, which fits a u32.
        self.credit.forwarded(n as u32);
        if self.credit.update_due() {
            self.owed.credit_update = true;
        }
    }

    /// Everything the guest sent has reached the host socket.
    fn drained(&mut self) -> Verdict {
        if self.peer_shutdown & SHUTDOWN_SEND != 0 && !self.host_write_shut {
            self.host_write_shut = true;
            // Fails only if the host process is gone; its EOF or error surfaces on the next read.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        self.close_if_done()
    }

    /// The guest closing (both directions shut) is answered with RST once its data is out, as
    /// Linux expects; so is a connection on which neither side can send any more.
    fn close_if_done(&self) -> Verdict {
        let guest_closed = self.peer_shutdown == SHUTDOWN_BOTH;
        let both_sent_all = self.peer_shutdown & SHUTDOWN_SEND != 0 && self.host_eof;
        if self.tx_buf.is_empty() && (guest_closed || both_sent_all) {
            Verdict::Reset
        } else {
            Verdict::Keep
        }
    }

    fn may_send_data(&self) -> bool {
        self.state == State::Established
            && !self.host_eof
            && self.peer_shutdown & SHUTDOWN_RCV == 0
            && self.credit.peer_room() > 0
    }

    /// Whether the connection has a packet for the guest.
    pub fn wants_rx(&self) -> bool {
        let owed = &self.owed;
        owed.request
            || owed.response
            || owed.shutdown != 0
            || owed.credit_update
            || (self.readable && self.may_send_data())
    }

    /// What to watch the host socket for. Reading waits for guest credit, and readiness already
    /// seen needs no second notice, so that level-triggered epoll never reports the same thing
    /// twice.
    pub fn desired_interest(&self) -> EventSet {
        let mut ev = EventSet::empty();
        if !self.readable && self.may_send_data() {
            ev |= EventSet::IN;
        }
        if !self.tx_buf.is_empty() {
            ev |= EventSet::OUT;
        }
        ev
    }

    /// Puts the next packet for the guest into `rx`, if there is one. Host data is read
    /// straight from the socket into the buffer's size and the guest's credit.
    pub fn next_rx<B: BitmapSlice>(
        &mut self,
        rx: &mut RxBuffer<'_, B>,
        scratch: &mut [u8],
    ) -> (Option<Header>, Verdict) {
        if std::mem::take(&mut self.owed.request) {
            return (Some(self.header(Op::Request)), Verdict::Keep);
        }
        if std::mem::take(&mut self.owed.response) {
            return (Some(self.header(Op::Response)), Verdict::Keep);
        }
        if self.readable && self.may_send_data() {
            let budget = rx
                .payload_room()
                .min(self.credit.peer_room() as usize)
                .min(scratch.len());
            if budget > 0 {
                match read_retrying(&self.stream, &mut scratch[..budget]) {
                    Ok(0) => {
                        self.readable = false;
                        self.host_eof = true;
                        if self.close_if_done() == Verdict::Reset {
                            return (None, Verdict::Reset);
                        }
                        self.owed.shutdown |= SHUTDOWN_SEND;
                    }
                    Ok(n) => {
                        if n < budget {
                            self.readable = false;
                        }
                        if rx.write_payload(&scratch[..n]).is_err() {
                            return (None, Verdict::Reset);
                        }
                        self.credit.sent(n as u32);
                        return (Some(self.header(Op::Rw)), Verdict::Keep);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                    Err(_) => return (None, Verdict::Reset),
                }
            }
        }
        let flags = std::mem::take(&mut self.owed.shutdown);
        if flags != 0 {
            let mut h = self.header(Op::Shutdown);
            h.flags = flags;
            return (Some(h), Verdict::Keep);
        }
        if self.owed.credit_update {
            return (Some(self.header(Op::CreditUpdate)), Verdict::Keep);
        }
        (None, Verdict::Keep)
    }

    /// A header from us to the guest; every one carries our credit, so no separate update is
    /// owed after it.
    fn header(&mut self, op: Op) -> Header {
        let mut h = Header {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: self.key.local_port,
            dst_port: self.key.peer_port,
            type_: TYPE_STREAM,
            op: op as u16,
            ..Header::default()
        };
        self.credit.stamp(&mut h);
        self.owed.credit_update = false;
        h
    }
}

fn write_retrying(mut stream: &UnixStream, data: &[u8]) -> io::Result<usize> {
    loop {
        match stream.write(data) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn read_retrying(mut stream: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}
