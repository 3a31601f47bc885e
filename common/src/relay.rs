//! The byte relay between two connections that every forwarder of ours uses: the machine
//! daemon's API sockets, published ports and egress on both sides of the VM.
//!
//! Written over `tokio::io::copy` rather than taken from `tokio::io::copy_bidirectional`
//! because that one returns at the first failure in either direction and drops the other:
//! a server that answers and closes while its client is still sending (a 413 for an
//! oversized body) made the next write fail, and its answer, read but not yet written, was
//! lost. Here each direction ends on its own.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Copies `a` → `b` and `b` → `a` until both directions have ended; a direction that reaches
/// its end of stream half-closes its destination. Returns the bytes moved each way, or the
/// direction's error.
pub async fn relay<A, B>(a: A, b: B) -> (io::Result<u64>, io::Result<u64>)
where
    A: AsyncRead + AsyncWrite,
    B: AsyncRead + AsyncWrite,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let a_to_b = async {
        let moved = tokio::io::copy(&mut a_read, &mut b_write).await?;
        b_write.shutdown().await?;
        Ok(moved)
    };
    let b_to_a = async {
        let moved = tokio::io::copy(&mut b_read, &mut a_write).await?;
        a_write.shutdown().await?;
        Ok(moved)
    };
    tokio::join!(a_to_b, b_to_a)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    use super::*;

    #[tokio::test]
    async fn an_answer_sent_while_the_client_still_writes_arrives() {
        let (client, client_side) = UnixStream::pair().unwrap();
        let (server_side, mut server) = UnixStream::pair().unwrap();
        let relayed = tokio::spawn(relay(client_side, server_side));
        let (mut rx, mut tx) = client.into_split();
        // The server reads a little of a large request, answers and goes away.
        let serve = tokio::spawn(async move {
            let mut head = [0u8; 1024];
            server.read_exact(&mut head).await.unwrap();
            server
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\n\r\n")
                .await
                .unwrap();
        });
        let send = async {
            // Fails once the server is gone; what matters is what comes back.
            let _ = tx.write_all(&vec![b'a'; 8 << 20]).await;
            let _ = tx.shutdown().await;
        };
        let mut answer = Vec::new();
        let receive = rx.read_to_end(&mut answer);
        // The read may end in a reset once the relay lets go: the bytes before it count.
        let _ = tokio::join!(send, receive);
        serve.await.unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 413"),
            "the answer was lost: {:?}",
            String::from_utf8_lossy(&answer)
        );
        let _ = relayed.await.unwrap();
    }

    #[tokio::test]
    async fn each_end_of_stream_is_passed_on() {
        let (mut client, client_side) = UnixStream::pair().unwrap();
        let (server_side, mut server) = UnixStream::pair().unwrap();
        let relayed = tokio::spawn(relay(client_side, server_side));
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut request = Vec::new();
        server.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request");
        server.write_all(b"answer").await.unwrap();
        drop(server);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
        let (up, down) = relayed.await.unwrap();
        assert_eq!((up.unwrap(), down.unwrap()), (7, 6));
    }
}
