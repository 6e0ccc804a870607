//! Opening client sockets spread over loopback source addresses.
//!
//! One (source address, destination) pair has only ~28k ephemeral ports
//! (32768–60999), and a port bound with port 0 is reserved per source
//! address, so tens of thousands of connections need several source
//! addresses. All of 127.0.0.0/8 reaches the loopback interface, so
//! 127.0.0.2, 127.0.0.3, … work without any setup.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// Connects to the server from a rotating set of source addresses.
#[derive(Debug, Clone)]
pub struct Dialer {
    server: SocketAddr,
    sources: Vec<IpAddr>,
}

impl Dialer {
    pub fn new(server: SocketAddr, sources: Vec<IpAddr>) -> Dialer {
        Dialer { server, sources }
    }

    /// Connection number `index` goes out from source `index % sources`.
    pub async fn connect(&self, index: usize) -> io::Result<TcpStream> {
        let socket = match self.server {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if !self.sources.is_empty() {
            let source = self.sources[index % self.sources.len()];
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let stream = socket.connect(self.server).await?;
        // Small frames (subscribe messages, publish requests) go out at once.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// `count` source addresses for connections to `server`: 127.0.0.2 onwards
/// for an IPv4 loopback server; none (the kernel's choice) for IPv6, whose
/// loopback is a single address.
pub fn loopback_sources(server: SocketAddr, count: u8) -> Vec<IpAddr> {
    match server {
        SocketAddr::V4(_) => (0..count)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
            .collect(),
        SocketAddr::V6(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_sources_start_at_127_0_0_2() {
        let sources = loopback_sources("127.0.0.1:80".parse().unwrap(), 3);
        let expected: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(sources, expected);
        assert!(loopback_sources("[::1]:80".parse().unwrap(), 3).is_empty());
    }
}
