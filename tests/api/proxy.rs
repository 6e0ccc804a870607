//! A TCP proxy a test can cut and restore, to make a server unreachable
//! without stopping it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

pub struct TcpProxy {
    address: SocketAddr,
    upstream: String,
    /// The accept loop and every proxied connection, while running.
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl TcpProxy {
    /// Proxies a fresh loopback port to `upstream`.
    pub async fn start(upstream: &str) -> TcpProxy {
        let proxy = TcpProxy {
            address: "127.0.0.1:0".parse().expect("address"),
            upstream: upstream.to_owned(),
            tasks: Arc::default(),
        };
        proxy.listen().await
    }

    /// `host:port` to connect to instead of the upstream.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Cuts every connection and stops listening: connecting is refused.
    pub async fn stop(&self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
        // Let the aborted tasks drop their sockets.
        tokio::task::yield_now().await;
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        let listener = bind(self.address);
        self.accept_on(listener);
    }

    async fn listen(mut self) -> TcpProxy {
        let listener = bind(self.address);
        self.address = listener.local_addr().expect("local address");
        self.accept_on(listener);
        self
    }

    fn accept_on(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accepting = tokio::spawn({
            let tasks = tasks.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let connection = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    tasks.lock().expect("tasks").push(connection);
                }
            }
        });
        tasks.lock().expect("tasks").push(accepting);
    }
}

fn bind(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuse the address");
    socket.bind(address).expect("bind the proxy");
    socket.listen(128).expect("listen")
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }
}
