//! A TCP connector for talking to servers that write one answer in several small segments
//! and leave Nagle's algorithm on (Patroni's Python REST API: headers, then body, each a TLS
//! record of its own).
//!
//! With Nagle on, the server holds its second segment until the first is acknowledged; the
//! client's kernel delays that acknowledgement (up to 40 ms on Linux) hoping to piggyback it
//! on data it never sends, so every answer stalls ~40–45 ms. TCP_QUICKACK makes the kernel
//! send a pending acknowledgement now, but it is not sticky: the kernel drops back to
//! delayed ACKs on its own (it re-enters "pingpong" mode whenever we send soon after
//! receiving). So the stream sets it again after every read that returned data, which is
//! the moment an acknowledgement is pending and the server may be waiting for it. One
//! setsockopt per read; no effect on what is sent.

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// [`HttpConnector`] whose streams re-arm TCP_QUICKACK after each read when `quick`
/// (otherwise plain TCP streams: one connector type for both kinds of client).
#[derive(Clone)]
pub struct QuickAckConnector {
    pub(crate) inner: HttpConnector,
    pub(crate) quick: bool,
}

impl tower_service::Service<http::Uri> for QuickAckConnector {
    type Response = QuickAckStream;
    type Error = <HttpConnector as tower_service::Service<http::Uri>>::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<QuickAckStream, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let quick = self.quick;
        Box::pin(async move {
            let io = connecting.await?;
            if quick {
                // The TLS handshake's server flight is the first multi-record answer.
                quickack(io.inner());
            }
            Ok(QuickAckStream { io, quick })
        })
    }
}

/// A TCP stream that, when `quick`, asks for an immediate ACK after every read.
pub struct QuickAckStream {
    io: TokioIo<TcpStream>,
    quick: bool,
}

fn quickack(tcp: &TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd owned by `tcp` and a c_int option value of the right size.
    // A failure (not a TCP socket, old kernel) only loses the optimisation.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl Read for QuickAckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let (true, Poll::Ready(Ok(()))) = (self.quick, &polled) {
            // Data (or end of stream) was consumed: flush the ACK the kernel would delay.
            quickack(self.io.inner());
        }
        polled
    }
}

impl Write for QuickAckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower_service::Service;

    fn quickack_on(s: &QuickAckStream) -> bool {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid fd, a c_int buffer and its length.
        let rc = unsafe {
            libc::getsockopt(
                s.io.inner().as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
        v != 0
    }

    /// A server that answers each request line in two writes (as Patroni does: headers,
    /// then body) over a stream from the connector; the bytes arrive intact either way, and
    /// the quick stream has TCP_QUICKACK on after every read although sending data right
    /// after receiving may have put the socket back into delayed-ACK mode.
    #[tokio::test]
    async fn streams_carry_the_bytes_and_quick_ones_rearm_after_each_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4];
                for _ in 0..3 {
                    s.read_exact(&mut buf).await.unwrap();
                    s.write_all(b"head|").await.unwrap();
                    s.write_all(b"body;").await.unwrap();
                }
            }
        });
        let uri: http::Uri = format!("http://{addr}").parse().unwrap();
        for quick in [false, true] {
            let mut connector = QuickAckConnector {
                inner: HttpConnector::new(),
                quick,
            };
            std::future::poll_fn(|cx| connector.poll_ready(cx))
                .await
                .unwrap();
            let stream = connector.call(uri.clone()).await.unwrap();
            let mut io = TokioIo::new(stream);
            let mut got = Vec::new();
            for _ in 0..3 {
                io.write_all(b"req\n").await.unwrap();
                let mut answer = [0u8; 10];
                io.read_exact(&mut answer).await.unwrap();
                got.extend_from_slice(&answer);
                if quick {
                    assert!(quickack_on(io.inner()), "TCP_QUICKACK off after a read");
                }
            }
            assert_eq!(got, b"head|body;".repeat(3), "quick = {quick}");
        }
        server.await.unwrap();
    }
}
