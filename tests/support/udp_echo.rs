//! A UDP echo server for the port-publishing tests, built statically at test time and copied
//! into a busybox container (busybox's nc has no UDP mode).
fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9999".into());
    let sock = std::net::UdpSocket::bind(format!("0.0.0.0:{port}")).expect("bind");
    let mut buf = [0u8; 65536];
    loop {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    }
}
