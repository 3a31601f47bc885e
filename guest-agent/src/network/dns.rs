//! The embedded DNS server of user-defined networks: how containers find each other by name.
//!
//! Docker answers at 127.0.0.11 inside every container's namespace, which costs a socket and
//! NAT rules per container. We do what podman's aardvark-dns does instead: one server per
//! user-defined bridge network, listening on the network's gateway IP, port 53, UDP and TCP.
//! Every container on the network can already reach its gateway, so its resolv.conf simply
//! names it, and nothing is set up per container.
//!
//! **Per-requester view.** One agent serves many networks and a container may be on several,
//! so the answer depends on who asks: every lookup hands the query's source address to
//! [`Names`], which answers only from networks the requester shares. A container thus cannot
//! learn names (or addresses) on networks it is not on. This relies on traffic inside a bridge
//! not being NATed, so the source address is the container's own.
//!
//! **Forwarding.** Names the agent does not know go, unchanged, to the host's resolvers. The
//! agent runs in the root network namespace (the host's, or the VM's), so loopback resolvers
//! such as systemd-resolved's 127.0.0.53 work from here although a container could not reach
//! them: that is why [`upstream_from_resolv_conf`] keeps them. There is no cache: the upstream
//! resolver has one, and without one there is nothing to poison and no per-requester state to
//! keep coherent.
//!
//! **Answers.** Known names get TTL 600 (docker's), RA set (to a stub resolver we are a
//! recursive server) and AA clear (we are no zone's authority). Other types of a known name
//! (AAAA above all, which getaddrinfo asks alongside A) get an empty NOERROR, so the stub does
//! not go on to its next server and wait for a timeout there.
//!
//! Over UDP an answer larger than the client takes (512 bytes, or its EDNS size) is cut to its
//! question with TC set, which sends the client to TCP on the same port.
//!
//! **Only its own network.** A server answers clients whose source address is in the subnet of
//! the network it serves and drops everything else unanswered (UDP) or closes it (TCP): the
//! gateway is reachable from other networks' containers, from the host and maybe from the
//! host's LAN, and a recursive server that answers them is an open resolver, one that amplifies
//! floods aimed at whatever source address a query claims.
//!
//! **Hostile input.** Every packet may be hostile: what does not parse is dropped (UDP) or
//! closes the connection (TCP), forwarded queries in flight and TCP connections are capped, and
//! TCP connections time out when idle, so a flood costs bounded memory and file descriptors.
//!
//! Known limit: a host resolver bound to the wildcard address on port 53 (dnsmasq's default)
//! makes binding the gateway's port 53 fail with `AddrInUse`; [`Server::start`] returns that
//! error and the network has no name resolution.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, DEFAULT_MAX_PAYLOAD_LEN};
use hickory_proto::op::{Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use ipnet::Ipv4Net;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// Docker's TTL for its embedded server's answers.
const TTL: u32 = 600;
/// Without EDNS a UDP message may not be larger (RFC 1035 §4.2.1).
const PLAIN_UDP_MAX: usize = 512;
/// The most we send over UDP whatever a client claims to accept: larger datagrams fragment,
/// and fragments get lost.
const UDP_CLAMP: usize = 4096;
/// The largest DNS message: TCP frames it with a 16-bit length.
const MAX_MESSAGE: usize = 65535;
/// glibc's MAXNS: the host's own lookups never use more nameservers than this.
const MAX_NAMESERVERS: usize = 3;

/// Answers for names the agent knows. `client` is the querying container's source address:
/// a container sees only names on networks it shares with the requester.
pub trait Names: Send + Sync + 'static {
    /// IPv4 addresses for `name` (lowercase, without trailing dot), or None if unknown here.
    fn lookup(&self, client: IpAddr, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// The name for a container address (PTR), or None.
    fn reverse(&self, client: IpAddr, addr: Ipv4Addr) -> Option<String>;
}

/// A struct rather than constants so that tests can shrink them.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Forwarded queries in flight, UDP and TCP together.
    forwards: usize,
    tcp_conns: usize,
    /// Per upstream server and query.
    upstream_timeout: Duration,
    /// How long a TCP client may take to send its next query (or read our answer).
    tcp_idle: Duration,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        forwards: 256,
        tcp_conns: 128,
        upstream_timeout: Duration::from_secs(2),
        tcp_idle: Duration::from_secs(10),
    };
}

/// What the UDP and TCP sides of one server share.
struct Shared {
    /// The subnet of the network served: the only sources answered.
    clients: Ipv4Net,
    /// Queries and connections dropped for coming from elsewhere, for the debug log.
    dropped: AtomicU64,
    names: Arc<dyn Names>,
    upstream: Vec<SocketAddr>,
    forwards: Arc<Semaphore>,
    limits: Limits,
}

/// A running DNS server. Dropping it stops both listeners and every task they started.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    // Dropping a JoinSet aborts its tasks. The two listener tasks own their sockets and, in
    // JoinSets of their own, the per-query and per-connection tasks, so this one field takes
    // everything down. The sockets close when the runtime next drops the aborted tasks, a
    // moment after the drop, not during it.
    _tasks: JoinSet<()>,
}

impl Server {
    /// Bind UDP and TCP on `listen` (port 53 normally; tests use a high port) and serve.
    /// `clients`: the subnet of the network served; queries from anywhere else are dropped.
    /// `upstream`: where names the agent does not know are forwarded (the host's resolvers).
    ///
    /// Port 0 picks one free port for both.
    pub async fn start(
        listen: SocketAddr,
        clients: Ipv4Net,
        names: Arc<dyn Names>,
        upstream: Vec<SocketAddr>,
    ) -> io::Result<Server> {
        Self::start_with(listen, clients, names, upstream, Limits::DEFAULT).await
    }

    async fn start_with(
        listen: SocketAddr,
        clients: Ipv4Net,
        names: Arc<dyn Names>,
        upstream: Vec<SocketAddr>,
        limits: Limits,
    ) -> io::Result<Server> {
        let (udp, tcp) = bind(listen).await?;
        let local_addr = udp.local_addr()?;
        // Forwarding to ourselves would bounce each query around until the in-flight cap is hit.
        let upstream = upstream.into_iter().filter(|u| *u != local_addr).collect();
        let shared = Arc::new(Shared {
            clients,
            dropped: AtomicU64::new(0),
            names,
            upstream,
            forwards: Arc::new(Semaphore::new(limits.forwards)),
            limits,
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_udp(shared.clone(), Arc::new(udp)));
        tasks.spawn(serve_tcp(shared, tcp));
        Ok(Server {
            local_addr,
            _tasks: tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Shared {
    /// Whether `client` is on the network served; counts and logs (at debug: a flood must not
    /// flood the log) what is not.
    fn admits(&self, client: IpAddr, transport: &str) -> bool {
        if matches!(client, IpAddr::V4(c) if self.clients.contains(&c)) {
            return true;
        }
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            "dns for {}: dropping {transport} from {client}, not on the network ({n} so far)",
            self.clients
        );
        false
    }
}

/// The nameservers of a resolv.conf text (IPv4 and IPv6, with port 53), in order, for
/// `upstream`.
///
/// As glibc reads it: at most the first three, and with none listed, the local machine.
/// Loopback servers are kept (see the module doc).
pub fn upstream_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(server) = words.next().and_then(parse_nameserver) else {
            continue;
        };
        if !out.contains(&server) {
            out.push(server);
        }
        if out.len() == MAX_NAMESERVERS {
            break;
        }
    }
    if out.is_empty() {
        out.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53));
    }
    out
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Ok(ip) = word.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    // A link-local IPv6 server ("fe80::1%eth0") is unreachable without its zone.
    let (addr, zone) = word.split_once('%')?;
    let addr: Ipv6Addr = addr.parse().ok()?;
    let scope = zone.parse::<u32>().ok().or_else(|| ifindex(zone))?;
    Some(SocketAddr::V6(SocketAddrV6::new(addr, 53, 0, scope)))
}

fn ifindex(name: &str) -> Option<u32> {
    // Interface names hold no '/', and refusing one keeps the path inside /sys/class/net.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn bind(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut attempt = 1;
    loop {
        let err = match bind_pair(listen).await {
            Ok(pair) => return Ok(pair),
            Err(e) => e,
        };
        if err.kind() != io::ErrorKind::AddrInUse || attempt == 8 {
            return Err(err);
        }
        // With port 0, the port UDP got may be taken for TCP: another pick will do. With a
        // fixed port, a Server for the same address dropped just before may not have let go
        // of it yet (see `Server::_tasks`).
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn bind_pair(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let udp = UdpSocket::bind(listen).await?;
    // One port for both: a client told to retry over TCP (TC) does so at the same address.
    let tcp = TcpListener::bind(udp.local_addr()?).await?;
    Ok((udp, tcp))
}

async fn serve_udp(shared: Arc<Shared>, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut forwards = JoinSet::new();
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!("dns {}: receive: {e}", addr_of(&sock));
                // Such errors are transient (memory pressure); the pause keeps a lasting one
                // from spinning a core.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while forwards.try_join_next().is_some() {}
        let packet = &buf[..n];
        let client = peer.ip().to_canonical();
        if !shared.admits(client, "a UDP query") {
            continue;
        }
        match decide(&*shared.names, packet, client, true) {
            Decision::Ignore => {}
            Decision::Reply(reply) => {
                let _ = sock.send_to(&reply, peer).await;
            }
            Decision::Forward(query) => {
                let Ok(permit) = shared.forwards.clone().try_acquire_owned() else {
                    // Answering at once, rather than dropping, lets the stub move on now.
                    let failed = response(&query, ResponseCode::ServFail, Vec::new());
                    if let Some(reply) = encode(&failed, udp_limit(&query)) {
                        let _ = sock.send_to(&reply, peer).await;
                    }
                    continue;
                };
                let (shared, sock, packet) = (shared.clone(), sock.clone(), packet.to_vec());
                forwards.spawn(async move {
                    let reply = forward(&shared, &packet, &query, true).await;
                    drop(permit);
                    if let Some(reply) = reply {
                        let _ = sock.send_to(&reply, peer).await;
                    }
                });
            }
        }
    }
}

fn addr_of(sock: &UdpSocket) -> String {
    sock.local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string())
}

async fn serve_tcp(shared: Arc<Shared>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(shared.limits.tcp_conns));
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!("dns: accept: {e}");
                // Out of file descriptors, most likely: accepting again at once would spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let client = peer.ip().to_canonical();
        // Before taking a slot, so that outsiders cannot use up the network's share.
        if !shared.admits(client, "a TCP connection") {
            continue;
        }
        // Over the cap the connection is closed at once: the client falls back to another
        // server, and idle connections cannot pile up.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let shared = shared.clone();
        conns.spawn(async move {
            serve_conn(&shared, stream, client).await;
            drop(slot);
        });
    }
}

/// One TCP client: queries are answered one after another, as they come (RFC 7766 allows
/// either order; in order is simpler and the stub resolvers we serve send one at a time).
async fn serve_conn(shared: &Shared, mut stream: TcpStream, client: IpAddr) {
    let idle = shared.limits.tcp_idle;
    loop {
        let Ok(Ok(packet)) = timeout(idle, read_frame(&mut stream)).await else {
            return;
        };
        let reply = match decide(&*shared.names, &packet, client, false) {
            Decision::Ignore => return,
            Decision::Reply(reply) => Some(reply),
            Decision::Forward(query) => match shared.forwards.clone().try_acquire_owned() {
                Ok(permit) => {
                    let reply = forward(shared, &packet, &query, false).await;
                    drop(permit);
                    reply
                }
                Err(_) => encode(
                    &response(&query, ResponseCode::ServFail, Vec::new()),
                    MAX_MESSAGE,
                ),
            },
        };
        let Some(reply) = reply else {
            return;
        };
        if !matches!(
            timeout(idle, write_frame(&mut stream, &reply)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

enum Decision {
    /// Not something to answer: garbage, or a response (answering those could start a loop
    /// with another server that does the same).
    Ignore,
    Reply(Vec<u8>),
    /// Not ours: ask upstream. The parsed query, to check and shape the upstream's answer.
    Forward(Message),
}

fn decide(names: &dyn Names, packet: &[u8], client: IpAddr, udp: bool) -> Decision {
    let Ok(header) = Header::read(&mut BinDecoder::new(packet)) else {
        return Decision::Ignore;
    };
    let meta = header.metadata;
    if meta.message_type != MessageType::Query {
        return Decision::Ignore;
    }
    // The parser reserves room for as many questions as the header claims, and 12 bytes can
    // claim 65535: a count that cannot fit in the packet (a question takes at least 5 bytes)
    // marks garbage before it costs memory.
    if usize::from(header.counts.queries) > packet.len().saturating_sub(12) / 5 {
        return Decision::Ignore;
    }
    // Only what parses whole is answered, even with an error: random bytes often make a
    // plausible header.
    let Ok(query) = Message::from_vec(packet) else {
        return Decision::Ignore;
    };
    if meta.op_code != OpCode::Query {
        return header_only(meta, ResponseCode::NotImp);
    }
    if query.queries.len() != 1 {
        return header_only(meta, ResponseCode::FormErr);
    }
    match answer_locally(names, &query, client) {
        Some(answer) => match encode(&answer, transport_limit(&query, udp)) {
            Some(reply) => Decision::Reply(reply),
            None => Decision::Ignore,
        },
        None => Decision::Forward(query),
    }
}

/// An error answer without the question: it may be missing, or more than one.
fn header_only(query: Metadata, code: ResponseCode) -> Decision {
    let mut m = Message::error_msg(query.id, query.op_code, code);
    m.metadata.recursion_desired = query.recursion_desired;
    m.metadata.recursion_available = true;
    match m.to_vec() {
        Ok(reply) => Decision::Reply(reply),
        Err(_) => Decision::Ignore,
    }
}

/// The answer when the question is about a name or address `Names` knows for this client.
fn answer_locally(names: &dyn Names, query: &Message, client: IpAddr) -> Option<Message> {
    let q = query.queries.first()?;
    if q.query_class() != DNSClass::IN {
        return None;
    }
    let answers = if q.query_type() == RecordType::PTR {
        let addr = arpa_v4(q.name())?;
        let target = names.reverse(client, addr)?;
        // A name that is no valid DNS name cannot be answered; upstream may know better.
        let mut target = Name::from_ascii(&target).ok()?;
        target.set_fqdn(true);
        vec![Record::from_rdata(
            q.name().clone(),
            TTL,
            RData::PTR(PTR(target)),
        )]
    } else {
        let addrs = names.lookup(client, &lookup_key(q.name())?)?;
        if matches!(q.query_type(), RecordType::A | RecordType::ANY) {
            addrs
                .into_iter()
                .map(|a| Record::from_rdata(q.name().clone(), TTL, RData::A(A(a))))
                .collect()
        } else {
            Vec::new()
        }
    };
    Some(response(query, ResponseCode::NoError, answers))
}

/// The name as `Names` wants it: lowercase, no trailing dot. The answer itself repeats the
/// question's spelling, which some resolvers check (0x20 case randomization).
fn lookup_key(name: &Name) -> Option<String> {
    let text = name.to_lowercase().to_ascii();
    let text = text.strip_suffix('.').unwrap_or(&text);
    (!text.is_empty()).then(|| text.to_string())
}

/// The address of a full `d.c.b.a.in-addr.arpa` name; shorter ones name networks, not hosts.
fn arpa_v4(name: &Name) -> Option<Ipv4Addr> {
    let net = name.parse_arpa_name().ok()?;
    match net.addr() {
        IpAddr::V4(addr) if net.prefix_len() == 32 => Some(addr),
        _ => None,
    }
}

/// Our response to `query`, repeating its question.
fn response(query: &Message, code: ResponseCode, answers: Vec<Record>) -> Message {
    let mut m = Message::response(query.metadata.id, OpCode::Query);
    m.metadata = Metadata::response_from_request(&query.metadata);
    m.metadata.recursion_available = true;
    m.metadata.response_code = code;
    m.add_queries(query.queries.iter().cloned());
    m.add_answers(answers);
    // RFC 6891 §7: a query with OPT gets a response with OPT.
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(DEFAULT_MAX_PAYLOAD_LEN);
        m.set_edns(edns);
    }
    m
}

/// Encodes `m`; if it is larger than `limit`, only its header and question with TC set, which
/// tells the client to ask again over TCP.
fn encode(m: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    m.truncate().to_vec().ok()
}

fn udp_limit(query: &Message) -> usize {
    usize::from(query.max_payload()).clamp(PLAIN_UDP_MAX, UDP_CLAMP)
}

fn transport_limit(query: &Message, udp: bool) -> usize {
    if udp {
        udp_limit(query)
    } else {
        MAX_MESSAGE
    }
}

/// Forwards the client's `packet` unchanged and returns what to send back: the upstream's
/// answer (with the client's ID, as it is the client's packet), TC if it is too large for the
/// client's UDP, or SERVFAIL if no upstream answered.
async fn forward(shared: &Shared, packet: &[u8], query: &Message, udp: bool) -> Option<Vec<u8>> {
    let limit = transport_limit(query, udp);
    match ask_upstreams(shared, packet, query, udp).await {
        Some(reply) if reply.len() <= limit => Some(reply),
        Some(_) => {
            let mut m = response(query, ResponseCode::NoError, Vec::new());
            m.metadata.truncation = true;
            encode(&m, limit)
        }
        None => {
            tracing::debug!(
                "dns: no upstream answered {:?}",
                query.queries.first().map(|q| q.name().to_ascii())
            );
            encode(&response(query, ResponseCode::ServFail, Vec::new()), limit)
        }
    }
}

/// Asks the upstream servers in order until one answers.
async fn ask_upstreams(
    shared: &Shared,
    packet: &[u8],
    query: &Message,
    udp: bool,
) -> Option<Vec<u8>> {
    let wait = shared.limits.upstream_timeout;
    let mut failure = None;
    for &server in &shared.upstream {
        let answer = if udp {
            match udp_exchange(server, packet, query, wait).await {
                // The client would come back over TCP anyway; asking over TCP now saves it
                // the round trip (and fits if the client accepts more than the upstream).
                Some((reply, meta)) if meta.truncation => tcp_exchange(server, packet, query, wait)
                    .await
                    .or(Some((reply, meta))),
                other => other,
            }
        } else {
            tcp_exchange(server, packet, query, wait).await
        };
        let Some((reply, meta)) = answer else {
            continue;
        };
        // Like glibc and docker, a server that fails or refuses is a reason to ask the next
        // one; its answer still beats our own SERVFAIL if none does better.
        if matches!(
            meta.response_code,
            ResponseCode::ServFail | ResponseCode::Refused
        ) {
            failure = Some(reply);
            continue;
        }
        return Some(reply);
    }
    failure
}

async fn udp_exchange(
    server: SocketAddr,
    packet: &[u8],
    query: &Message,
    wait: Duration,
) -> Option<(Vec<u8>, Metadata)> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let exchange = async {
        // A socket per query gives each query its own random source port, and connect() makes
        // the kernel drop datagrams from anyone but `server` and report an ICMP unreachable
        // as an error, so a server that is down is skipped at once, not after the timeout.
        let sock = UdpSocket::bind(local).await.ok()?;
        sock.connect(server).await.ok()?;
        sock.send(packet).await.ok()?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let n = sock.recv(&mut buf).await.ok()?;
            let reply = &buf[..n];
            // A stray or forged datagram is skipped, not taken for the answer.
            if let Some(meta) = check_reply(reply, query) {
                return Some((reply.to_vec(), meta));
            }
        }
    };
    timeout(wait, exchange).await.ok().flatten()
}

async fn tcp_exchange(
    server: SocketAddr,
    packet: &[u8],
    query: &Message,
    wait: Duration,
) -> Option<(Vec<u8>, Metadata)> {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.ok()?;
        write_frame(&mut stream, packet).await.ok()?;
        let reply = read_frame(&mut stream).await.ok()?;
        let meta = check_reply(&reply, query)?;
        Some((reply, meta))
    };
    timeout(wait, exchange).await.ok().flatten()
}

/// The header of `reply` if it answers `query`: a response, with its ID and question.
fn check_reply(reply: &[u8], query: &Message) -> Option<Metadata> {
    let mut decoder = BinDecoder::new(reply);
    let header = Header::read(&mut decoder).ok()?;
    let meta = header.metadata;
    if meta.message_type != MessageType::Response || meta.id != query.metadata.id {
        return None;
    }
    let asked = query.queries.first()?;
    match header.counts.queries {
        1 => {
            let q = Query::read(&mut decoder).ok()?;
            // Name equality ignores case: resolvers may echo a 0x20-randomized spelling.
            let same = q.name() == asked.name()
                && q.query_type() == asked.query_type()
                && q.query_class() == asked.query_class();
            same.then_some(meta)
        }
        // Some servers leave the question out of error answers (FORMERR, NOTIMP).
        0 if meta.response_code != ResponseCode::NoError => Some(meta),
        _ => None,
    }
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let len = usize::from(r.read_u16().await?);
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "DNS message too large"))?;
    let mut buf = Vec::with_capacity(2 + message.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(message);
    // One write: some servers mishandle a length and message that arrive in separate segments.
    w.write_all(&buf).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;
    use tokio::sync::mpsc;

    const WEB: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 2);
    /// The only client that shares a network with the fake names; 127.0.0.2 shares none.
    const MEMBER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const LOOPBACK_ANY: &str = "127.0.0.1:0";

    /// Where the tests' clients are: all of loopback, so that MEMBER and STRANGER both are.
    fn loopback_net() -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap()
    }

    struct Fake {
        by_name: HashMap<String, Vec<Ipv4Addr>>,
        asked: Mutex<Vec<String>>,
    }

    impl Names for Fake {
        fn lookup(&self, client: IpAddr, name: &str) -> Option<Vec<Ipv4Addr>> {
            self.asked.lock().unwrap().push(name.to_string());
            if client != MEMBER {
                return None;
            }
            self.by_name.get(name).cloned()
        }
        fn reverse(&self, client: IpAddr, addr: Ipv4Addr) -> Option<String> {
            if client != MEMBER {
                return None;
            }
            let mut names: Vec<_> = self
                .by_name
                .iter()
                .filter(|(_, v)| v.contains(&addr))
                .collect();
            names.sort();
            names.first().map(|(k, _)| k.to_string())
        }
    }

    fn fake() -> Arc<Fake> {
        let mut by_name = HashMap::new();
        by_name.insert("web".to_string(), vec![WEB]);
        by_name.insert(
            "db".to_string(),
            vec![Ipv4Addr::new(10, 89, 0, 3), Ipv4Addr::new(10, 89, 0, 4)],
        );
        by_name.insert(
            "many".to_string(),
            (1..=60).map(|i| Ipv4Addr::new(10, 90, 0, i)).collect(),
        );
        Arc::new(Fake {
            by_name,
            asked: Mutex::new(Vec::new()),
        })
    }

    async fn server(upstream: Vec<SocketAddr>) -> Server {
        Server::start(
            LOOPBACK_ANY.parse().unwrap(),
            loopback_net(),
            fake(),
            upstream,
        )
        .await
        .unwrap()
    }

    fn query(id: u16, name: &str, rtype: RecordType) -> Message {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m
    }

    async fn ask_udp_from(from: IpAddr, server: SocketAddr, q: &Message) -> Option<Message> {
        let sock = UdpSocket::bind((from, 0)).await.unwrap();
        sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, _) = timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(Message::from_vec(&buf[..n]).unwrap())
    }

    async fn ask_udp(server: SocketAddr, q: &Message) -> Message {
        ask_udp_from(MEMBER, server, q)
            .await
            .expect("no answer over UDP")
    }

    async fn ask_tcp(stream: &mut TcpStream, q: &Message) -> Message {
        write_frame(stream, &q.to_vec().unwrap()).await.unwrap();
        let reply = timeout(Duration::from_secs(5), read_frame(stream))
            .await
            .unwrap()
            .unwrap();
        Message::from_vec(&reply).unwrap()
    }

    fn addrs(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    /// A resolver answering every name with 192.0.2.1 over UDP and 192.0.2.2 over TCP
    /// (or only TC over UDP if `truncate`), reporting each query it got and how.
    async fn fake_upstream(
        truncate: bool,
    ) -> (
        SocketAddr,
        mpsc::UnboundedReceiver<(bool, Vec<u8>)>,
        JoinSet<()>,
    ) {
        let (udp, tcp) = bind(LOOPBACK_ANY.parse().unwrap()).await.unwrap();
        let addr = udp.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let answer = move |packet: &[u8], udp: bool| {
            let q = Message::from_vec(packet).unwrap();
            let mut m = response(&q, ResponseCode::NoError, Vec::new());
            if udp && truncate {
                m.metadata.truncation = true;
            } else {
                let ip = if udp {
                    Ipv4Addr::new(192, 0, 2, 1)
                } else {
                    Ipv4Addr::new(192, 0, 2, 2)
                };
                m.add_answer(Record::from_rdata(
                    q.queries[0].name().clone(),
                    60,
                    RData::A(A(ip)),
                ));
            }
            m.to_vec().unwrap()
        };
        let utx = tx.clone();
        tasks.spawn(async move {
            let mut buf = vec![0u8; MAX_MESSAGE];
            loop {
                let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
                utx.send((false, buf[..n].to_vec())).unwrap();
                udp.send_to(&answer(&buf[..n], true), peer).await.unwrap();
            }
        });
        tasks.spawn(async move {
            loop {
                let (mut s, _) = tcp.accept().await.unwrap();
                let packet = read_frame(&mut s).await.unwrap();
                tx.send((true, packet.clone())).unwrap();
                write_frame(&mut s, &answer(&packet, false)).await.unwrap();
            }
        });
        (addr, rx, tasks)
    }

    /// A UDP socket that swallows queries: an upstream that never answers.
    async fn silent_upstream() -> UdpSocket {
        UdpSocket::bind(LOOPBACK_ANY).await.unwrap()
    }

    #[tokio::test]
    async fn answers_known_name_over_udp() {
        let s = server(Vec::new()).await;
        let r = ask_udp(s.local_addr(), &query(4242, "web.", RecordType::A)).await;
        assert_eq!(r.metadata.id, 4242);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(!r.metadata.authoritative);
        assert!(r.metadata.recursion_available);
        assert!(r.metadata.recursion_desired);
        assert_eq!(addrs(&r), vec![WEB]);
        assert_eq!(r.answers[0].ttl, 600);
        assert_eq!(r.queries, query(1, "web.", RecordType::A).queries);
    }

    #[tokio::test]
    async fn answers_several_queries_on_one_tcp_connection() {
        let s = server(Vec::new()).await;
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        let r = ask_tcp(&mut c, &query(1, "web.", RecordType::A)).await;
        assert_eq!((r.metadata.id, addrs(&r)), (1, vec![WEB]));
        let r = ask_tcp(&mut c, &query(2, "db.", RecordType::A)).await;
        assert_eq!(r.metadata.id, 2);
        assert_eq!(
            addrs(&r),
            vec![Ipv4Addr::new(10, 89, 0, 3), Ipv4Addr::new(10, 89, 0, 4)]
        );
    }

    #[tokio::test]
    async fn names_match_whatever_their_case_and_trailing_dot() {
        let names = fake();
        let s = Server::start(
            LOOPBACK_ANY.parse().unwrap(),
            loopback_net(),
            names.clone(),
            Vec::new(),
        )
        .await
        .unwrap();
        for spelling in ["WEB.", "wEb", "Web."] {
            let r = ask_udp(s.local_addr(), &query(7, spelling, RecordType::A)).await;
            assert_eq!(addrs(&r), vec![WEB], "{spelling}");
            // The answer repeats the question's spelling (0x20 randomization).
            assert!(r.answers[0].name.eq_case(
                &Name::from_ascii(spelling)
                    .unwrap()
                    .append_domain(&Name::root())
                    .unwrap()
            ));
        }
        assert_eq!(*names.asked.lock().unwrap(), vec!["web"; 3]);
    }

    #[tokio::test]
    async fn other_types_of_a_known_name_are_empty_noerror() {
        let s = server(Vec::new()).await;
        for rtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            let r = ask_udp(s.local_addr(), &query(9, "web.", rtype)).await;
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{rtype}");
            assert!(r.answers.is_empty(), "{rtype}");
        }
    }

    #[tokio::test]
    async fn answers_ptr_of_a_known_address() {
        let s = server(Vec::new()).await;
        let r = ask_udp(
            s.local_addr(),
            &query(5, "2.0.89.10.in-addr.arpa.", RecordType::PTR),
        )
        .await;
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        match &r.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_ascii(), "web."),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.answers[0].ttl, 600);
    }

    #[tokio::test]
    async fn a_client_sees_only_names_of_its_networks() {
        let s = server(Vec::new()).await;
        let Some(r) =
            ask_udp_from(STRANGER, s.local_addr(), &query(3, "web.", RecordType::A)).await
        else {
            panic!("no answer to 127.0.0.2");
        };
        // Not known to this client, so forwarded, and with no upstream that fails.
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        assert!(r.answers.is_empty());
        let r = ask_udp_from(
            STRANGER,
            s.local_addr(),
            &query(3, "2.0.89.10.in-addr.arpa.", RecordType::PTR),
        )
        .await
        .unwrap();
        assert!(r.answers.is_empty());
    }

    #[tokio::test]
    async fn answers_only_clients_of_its_own_network() {
        // 127.0.0.0/31 holds MEMBER (127.0.0.1), not STRANGER (127.0.0.2).
        let net = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 31).unwrap();
        let (up, mut got, _up) = fake_upstream(false).await;
        let s = Server::start(LOOPBACK_ANY.parse().unwrap(), net, fake(), vec![up])
            .await
            .unwrap();
        let r = ask_udp(s.local_addr(), &query(70, "web.", RecordType::A)).await;
        assert_eq!(addrs(&r), vec![WEB]);

        // From outside: no answer, whether the name is local or would be forwarded, and
        // nothing reaches the upstream.
        let sock = UdpSocket::bind((STRANGER, 0)).await.unwrap();
        for (id, name) in [(71, "web."), (72, "example.org.")] {
            let q = query(id, name, RecordType::A).to_vec().unwrap();
            sock.send_to(&q, s.local_addr()).await.unwrap();
        }
        let mut buf = [0u8; 1024];
        assert!(
            timeout(Duration::from_millis(300), sock.recv_from(&mut buf))
                .await
                .is_err(),
            "answered a client outside the network"
        );
        assert!(got.try_recv().is_err(), "forwarded for an outsider");

        // Over TCP, the connection is closed before any query.
        let stranger = tokio::net::TcpSocket::new_v4().unwrap();
        stranger.bind((STRANGER, 0).into()).unwrap();
        let mut c = stranger.connect(s.local_addr()).await.unwrap();
        let _ = write_frame(&mut c, &query(73, "web.", RecordType::A).to_vec().unwrap()).await;
        let mut rest = Vec::new();
        let closed = timeout(Duration::from_secs(2), c.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");

        // Outsiders took no TCP slot nor anything else from the members.
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        assert_eq!(
            addrs(&ask_tcp(&mut c, &query(74, "web.", RecordType::A)).await),
            vec![WEB]
        );
        let r = ask_udp(s.local_addr(), &query(75, "example.org.", RecordType::A)).await;
        assert_eq!(addrs(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    }

    #[tokio::test]
    async fn forwards_unknown_names_unchanged_and_keeps_the_id() {
        let (up, mut got, _up) = fake_upstream(false).await;
        let s = server(vec![up]).await;
        let mut q = query(0xbeef, "example.org.", RecordType::A);
        q.set_edns(Edns::new());
        let r = ask_udp(s.local_addr(), &q).await;
        assert_eq!(r.metadata.id, 0xbeef);
        assert_eq!(addrs(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        assert_eq!(got.recv().await.unwrap(), (false, q.to_vec().unwrap()));
    }

    #[tokio::test]
    async fn asks_upstream_over_tcp_when_its_udp_answer_is_truncated() {
        let (up, mut got, _up) = fake_upstream(true).await;
        let s = server(vec![up]).await;
        let r = ask_udp(s.local_addr(), &query(11, "example.org.", RecordType::A)).await;
        assert!(!r.metadata.truncation);
        assert_eq!(addrs(&r), vec![Ipv4Addr::new(192, 0, 2, 2)]);
        assert!(!got.recv().await.unwrap().0);
        assert!(got.recv().await.unwrap().0);
    }

    #[tokio::test]
    async fn forwards_over_tcp_for_tcp_clients() {
        let (up, mut got, _up) = fake_upstream(false).await;
        let s = server(vec![up]).await;
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        let r = ask_tcp(&mut c, &query(12, "example.org.", RecordType::A)).await;
        assert_eq!(
            (r.metadata.id, addrs(&r)),
            (12, vec![Ipv4Addr::new(192, 0, 2, 2)])
        );
        assert!(got.recv().await.unwrap().0);
    }

    #[tokio::test]
    async fn dead_upstream_gives_servfail_after_the_timeout() {
        let silent = silent_upstream().await;
        let s = server(vec![silent.local_addr().unwrap()]).await;
        let start = Instant::now();
        let r = ask_udp(s.local_addr(), &query(13, "example.org.", RecordType::A)).await;
        let took = start.elapsed();
        assert_eq!(
            (r.metadata.id, r.metadata.response_code),
            (13, ResponseCode::ServFail)
        );
        assert_eq!(r.queries, query(1, "example.org.", RecordType::A).queries);
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn skips_an_upstream_that_is_down_at_once() {
        let closed = UdpSocket::bind(LOOPBACK_ANY)
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let (up, _got, _up) = fake_upstream(false).await;
        let s = server(vec![closed, up]).await;
        let start = Instant::now();
        let r = ask_udp(s.local_addr(), &query(14, "example.org.", RecordType::A)).await;
        assert_eq!(addrs(&r), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        // ICMP port unreachable on the connected socket, not the 2 s timeout.
        assert!(start.elapsed() < Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn no_upstream_gives_servfail() {
        let s = server(Vec::new()).await;
        let r = ask_udp(s.local_addr(), &query(15, "example.org.", RecordType::A)).await;
        assert_eq!(
            (r.metadata.id, r.metadata.response_code),
            (15, ResponseCode::ServFail)
        );
    }

    #[tokio::test]
    async fn ignores_garbage_and_goes_on_answering() {
        let s = server(Vec::new()).await;
        let sock = UdpSocket::bind(LOOPBACK_ANY).await.unwrap();
        let mut response = query(16, "web.", RecordType::A);
        response.metadata.message_type = MessageType::Response;
        let mut bad_body = query(17, "web.", RecordType::A).to_vec().unwrap();
        bad_body.truncate(bad_body.len() - 3);
        for junk in [
            &b""[..],
            b"\x01",
            b"garbage!garbage!",
            &[0xff; 600],
            &response.to_vec().unwrap(),
            &bad_body,
        ] {
            sock.send_to(junk, s.local_addr()).await.unwrap();
        }
        let mut buf = [0u8; 1024];
        assert!(
            timeout(Duration::from_millis(300), sock.recv_from(&mut buf))
                .await
                .is_err()
        );
        let r = ask_udp(s.local_addr(), &query(18, "web.", RecordType::A)).await;
        assert_eq!(addrs(&r), vec![WEB]);

        // Over TCP, garbage closes the connection.
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        write_frame(&mut c, b"garbage!garbage!").await.unwrap();
        let mut rest = Vec::new();
        let n = timeout(Duration::from_secs(2), c.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(n.map_or(true, |n| n == 0));
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        assert_eq!(
            addrs(&ask_tcp(&mut c, &query(19, "web.", RecordType::A)).await),
            vec![WEB]
        );
    }

    #[tokio::test]
    async fn refuses_what_it_does_not_serve() {
        let s = server(Vec::new()).await;
        let mut status = query(20, "web.", RecordType::A);
        status.metadata.op_code = OpCode::Status;
        let r = ask_udp(s.local_addr(), &status).await;
        assert_eq!(
            (r.metadata.id, r.metadata.response_code),
            (20, ResponseCode::NotImp)
        );
        let r = ask_udp(
            s.local_addr(),
            &Message::new(21, MessageType::Query, OpCode::Query),
        )
        .await;
        assert_eq!(
            (r.metadata.id, r.metadata.response_code),
            (21, ResponseCode::FormErr)
        );
    }

    #[tokio::test]
    async fn truncates_udp_answers_to_what_the_client_takes() {
        let s = server(Vec::new()).await;
        let r = ask_udp(s.local_addr(), &query(22, "many.", RecordType::A)).await;
        assert!(r.metadata.truncation);
        assert!(r.answers.is_empty());
        assert_eq!(r.queries.len(), 1);

        let mut big = query(23, "many.", RecordType::A);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        big.set_edns(edns);
        let r = ask_udp(s.local_addr(), &big).await;
        assert!(!r.metadata.truncation);
        assert_eq!(addrs(&r).len(), 60);
        assert!(r.edns.is_some());

        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        let r = ask_tcp(&mut c, &query(24, "many.", RecordType::A)).await;
        assert!(!r.metadata.truncation);
        assert_eq!(addrs(&r).len(), 60);
    }

    #[tokio::test]
    async fn forwarded_queries_in_flight_are_capped() {
        let silent = silent_upstream().await;
        let limits = Limits {
            forwards: 2,
            upstream_timeout: Duration::from_secs(10),
            ..Limits::DEFAULT
        };
        let s = Server::start_with(
            LOOPBACK_ANY.parse().unwrap(),
            loopback_net(),
            fake(),
            vec![silent.local_addr().unwrap()],
            limits,
        )
        .await
        .unwrap();
        let sock = UdpSocket::bind(LOOPBACK_ANY).await.unwrap();
        for id in 0..2 {
            sock.send_to(
                &query(id, "example.org.", RecordType::A).to_vec().unwrap(),
                s.local_addr(),
            )
            .await
            .unwrap();
        }
        // Wait until both are with the upstream, so the next one finds no room.
        let mut buf = [0u8; 512];
        for _ in 0..2 {
            timeout(Duration::from_secs(2), silent.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
        }
        let start = Instant::now();
        let r = ask_udp(s.local_addr(), &query(30, "example.org.", RecordType::A)).await;
        assert_eq!(
            (r.metadata.id, r.metadata.response_code),
            (30, ResponseCode::ServFail)
        );
        assert!(start.elapsed() < Duration::from_millis(1500));
        // Local names do not need room.
        assert_eq!(
            addrs(&ask_udp(s.local_addr(), &query(31, "web.", RecordType::A)).await),
            vec![WEB]
        );
    }

    #[tokio::test]
    async fn tcp_connections_are_capped_and_time_out() {
        let limits = Limits {
            tcp_conns: 1,
            tcp_idle: Duration::from_millis(500),
            ..Limits::DEFAULT
        };
        let s = Server::start_with(
            LOOPBACK_ANY.parse().unwrap(),
            loopback_net(),
            fake(),
            Vec::new(),
            limits,
        )
        .await
        .unwrap();
        let mut first = TcpStream::connect(s.local_addr()).await.unwrap();
        assert_eq!(
            addrs(&ask_tcp(&mut first, &query(40, "web.", RecordType::A)).await),
            vec![WEB]
        );
        let mut second = TcpStream::connect(s.local_addr()).await.unwrap();
        let mut rest = Vec::new();
        let closed = timeout(Duration::from_millis(400), second.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        // The idle one is closed after its timeout, which frees the slot.
        let start = Instant::now();
        let closed = timeout(Duration::from_secs(2), first.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(start.elapsed() < Duration::from_millis(1500));
        let mut third = TcpStream::connect(s.local_addr()).await.unwrap();
        assert_eq!(
            addrs(&ask_tcp(&mut third, &query(41, "web.", RecordType::A)).await),
            vec![WEB]
        );
    }

    #[tokio::test]
    async fn drop_closes_the_port() {
        let s = server(Vec::new()).await;
        let addr = s.local_addr();
        assert_eq!(
            addrs(&ask_udp(addr, &query(50, "web.", RecordType::A)).await),
            vec![WEB]
        );
        drop(s);
        let start = Instant::now();
        loop {
            match bind_pair(addr).await {
                Ok(_) => break,
                Err(e) if start.elapsed() > Duration::from_secs(2) => {
                    panic!("{addr} still taken: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn never_forwards_to_itself() {
        let probe = Server::start(
            LOOPBACK_ANY.parse().unwrap(),
            loopback_net(),
            fake(),
            Vec::new(),
        )
        .await
        .unwrap();
        let addr = probe.local_addr();
        drop(probe);
        let start = Instant::now();
        let s = loop {
            match Server::start(addr, loopback_net(), fake(), vec![addr]).await {
                Ok(s) => break s,
                Err(e) if start.elapsed() > Duration::from_secs(2) => panic!("{e}"),
                Err(_) => {}
            }
        };
        let start = Instant::now();
        let r = ask_udp(s.local_addr(), &query(60, "example.org.", RecordType::A)).await;
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        assert!(start.elapsed() < Duration::from_millis(1500));
    }

    #[test]
    fn reads_nameservers_as_glibc_does() {
        let text = "# generated\n; also a comment\nsearch example.com\n\
                    nameserver 127.0.0.53\n  nameserver\t::1  # trailing\nnameserver 127.0.0.53\n\
                    nameserver not-an-ip\nnameserver fe80::1%7\nnameserver 192.0.2.9\n";
        let got = upstream_from_resolv_conf(text);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.53:53".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 7)),
        ];
        assert_eq!(got, want);
        assert_eq!(
            upstream_from_resolv_conf("nameserver fe80::1%lo\n")
                .first()
                .map(|a| match a {
                    SocketAddr::V6(v6) => v6.scope_id() > 0,
                    SocketAddr::V4(_) => false,
                }),
            Some(true)
        );
        assert_eq!(
            upstream_from_resolv_conf(""),
            vec!["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            upstream_from_resolv_conf("nameserver fe80::1%../x\n"),
            vec!["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn server_can_live_in_shared_state() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<Server>();
    }
}
