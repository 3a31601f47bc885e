//! Credit-based flow control of one connection (virtio spec 1.2, 5.10.6.3).
//!
//! Each side tells the other how much buffer it has (`buf_alloc`) and how many bytes it has
//! consumed so far (`fwd_cnt`); a sender keeps what it has sent minus the peer's `fwd_cnt` under the
//! peer's `buf_alloc`. The counters are free-running and compared modulo 2^32, as the spec says.

use super::proto::Header;

/// What we advertise per connection: the most guest data we hold for a host socket that is not
/// reading. The same as Linux's default, so neither side is the bottleneck.
pub const BUF_ALLOC: u32 = 256 * 1024;

/// Smallest amount of freed buffer worth a CREDIT_UPDATE of its own while the host socket is
/// still draining: smaller updates cost the guest more than the stall they avoid.
const MIN_UPDATE: u32 = 16 * 1024;

#[derive(Debug)]
pub struct Credit {
    /// Guest to host: bytes received from the guest, bytes handed to the host socket, and the
    /// `fwd_cnt` the guest last heard from us.
    rx_cnt: u32,
    fwd_cnt: u32,
    last_fwd_cnt_sent: u32,
    /// Host to guest: the guest's buffer and consumption, and bytes we sent.
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    tx_cnt: u32,
}

impl Credit {
    pub fn new(peer_buf_alloc: u32, peer_fwd_cnt: u32) -> Credit {
        Credit {
            rx_cnt: 0,
            fwd_cnt: 0,
            last_fwd_cnt_sent: 0,
            peer_buf_alloc,
            peer_fwd_cnt,
            tx_cnt: 0,
        }
    }

    /// Every packet from the guest carries its current view.
    pub fn update_peer(&mut self, hdr: &Header) {
        self.peer_buf_alloc = hdr.buf_alloc;
        self.peer_fwd_cnt = hdr.fwd_cnt;
    }

    /// How many bytes the guest can take now. A `fwd_cnt` ahead of what we sent (only a broken
    /// or hostile guest reports that) reads as a full buffer, so it stalls that guest only.
    pub fn peer_room(&self) -> u32 {
        let in_flight = self.tx_cnt.wrapping_sub(self.peer_fwd_cnt);
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    pub fn sent(&mut self, n: u32) {
        self.tx_cnt = self.tx_cnt.wrapping_add(n);
    }

    /// Guest bytes we hold that the host socket has not taken yet.
    pub fn buffered(&self) -> u32 {
        self.rx_cnt.wrapping_sub(self.fwd_cnt)
    }

    /// Accounts `n` bytes from the guest; false if they exceed the credit we gave.
    pub fn receive(&mut self, n: u32) -> bool {
        if n > BUF_ALLOC.saturating_sub(self.buffered()) {
            return false;
        }
        self.rx_cnt = self.rx_cnt.wrapping_add(n);
        true
    }

    pub fn forwarded(&mut self, n: u32) {
        self.fwd_cnt = self.fwd_cnt.wrapping_add(n);
    }

    /// Fills in our credit fields of an outgoing packet.
    pub fn stamp(&mut self, hdr: &mut Header) {
        hdr.buf_alloc = BUF_ALLOC;
        hdr.fwd_cnt = self.fwd_cnt;
        self.last_fwd_cnt_sent = self.fwd_cnt;
    }

    /// Whether the guest should hear about freed buffer now, before it stalls. Data packets to
    /// the guest carry the same information, so this only fires for one-way traffic.
    pub fn update_due(&self) -> bool {
        let unreported = self.fwd_cnt.wrapping_sub(self.last_fwd_cnt_sent);
        if unreported == 0 {
            return false;
        }
        let guest_view_in_use = self.rx_cnt.wrapping_sub(self.last_fwd_cnt_sent);
        let guest_view_room = BUF_ALLOC.saturating_sub(guest_view_in_use);
        guest_view_room < BUF_ALLOC / 2 && (unreported >= MIN_UPDATE || self.buffered() == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(buf_alloc: u32, fwd_cnt: u32) -> Header {
        Header {
            buf_alloc,
            fwd_cnt,
            ..Header::default()
        }
    }

    #[test]
    fn peer_room_follows_the_guest() {
        let mut c = Credit::new(1000, 0);
        c.sent(600);
        assert_eq!(c.peer_room(), 400);
        c.sent(400);
        assert_eq!(c.peer_room(), 0);
        c.update_peer(&hdr(1000, 500));
        assert_eq!(c.peer_room(), 500);
        // Bogus fwd_cnt ahead of what was sent: treated as no room.
        c.update_peer(&hdr(1000, 5000));
        assert_eq!(c.peer_room(), 0);
    }

    #[test]
    fn counters_wrap() {
        let mut c = Credit::new(1000, u32::MAX - 10);
        c.tx_cnt = u32::MAX - 10;
        c.sent(100);
        assert_eq!(c.peer_room(), 900);
    }

    #[test]
    fn receive_enforces_our_credit() {
        let mut c = Credit::new(0, 0);
        assert!(c.receive(BUF_ALLOC));
        assert!(!c.receive(1));
        c.forwarded(10);
        assert!(c.receive(10));
        assert!(!c.receive(1));
    }

    #[test]
    fn update_due_only_when_guest_runs_low() {
        let mut c = Credit::new(0, 0);
        let mut h = Header::default();
        assert!(c.receive(BUF_ALLOC / 4));
        c.forwarded(BUF_ALLOC / 4);
        assert!(!c.update_due(), "plenty of room left in the guest's view");
        assert!(c.receive(BUF_ALLOC / 2));
        c.forwarded(BUF_ALLOC / 2);
        assert!(c.update_due());
        c.stamp(&mut h);
        assert_eq!(h.fwd_cnt, BUF_ALLOC / 4 * 3);
        assert!(!c.update_due());
        // Host draining slowly: tiny progress is not worth an update until it adds up.
        assert!(c.receive(BUF_ALLOC));
        c.forwarded(100);
        assert!(!c.update_due());
        c.forwarded(MIN_UPDATE);
        assert!(c.update_due());
    }
}
