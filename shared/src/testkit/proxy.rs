//! A TCP proxy in front of a real service, for fault tests: it passes traffic through, or loses
//! every reply (the request reaches the service, the client never hears back), or stalls (the
//! request never reaches the service and nothing comes back). Loopback only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Traffic flows both ways.
    None = 0,
    /// Requests reach the service; its replies are read and thrown away, and the client's
    /// connection is closed once the service has answered.
    LoseReplies = 1,
    /// Connections are accepted and read, but nothing is forwarded and nothing comes back.
    Stall = 2,
}

/// A running proxy. Dropping it stops accepting new connections.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) in front of `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let fault = Arc::new(AtomicU8::new(Fault::None as u8));
        let upstream = upstream.to_string();
        let shared = fault.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = shared.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = relay(client, &upstream, fault).await;
                });
            }
        });
        Ok(Self { addr, fault, task })
    }

    /// `http://127.0.0.1:<port>`, to use as a client's endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fault for connections from now on (a connection keeps the fault it was opened with for
    /// its requests, so clients that reuse connections see a change on their next request).
    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn current(fault: &AtomicU8) -> Fault {
    match fault.load(Ordering::SeqCst) {
        1 => Fault::LoseReplies,
        2 => Fault::Stall,
        _ => Fault::None,
    }
}

async fn relay(mut client: TcpStream, upstream: &str, fault: Arc<AtomicU8>) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = client_read.read(&mut up) => {
                let n = n?;
                if n == 0 { return Ok(()); }
                if current(&fault) != Fault::Stall {
                    server_write.write_all(&up[..n]).await?;
                }
            }
            n = server_read.read(&mut down) => {
                let n = n?;
                if n == 0 { return Ok(()); }
                match current(&fault) {
                    Fault::None => client_write.write_all(&down[..n]).await?,
                    // The service acted on the request; the client never learns it.
                    Fault::LoseReplies => return Ok(()),
                    Fault::Stall => {}
                }
            }
        }
    }
}
