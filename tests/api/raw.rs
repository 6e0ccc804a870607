//! A raw HTTP/1.1 connection, for tests that must send exactly the bytes a
//! hostile or unusual client would.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{PATIENCE, TestApp};

/// One raw HTTP/1.1 connection, read as text.
pub struct Raw {
    pub socket: TcpStream,
    pub read: String,
}

/// A response head: the status and the headers, names lowercased.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Raw {
    pub async fn open(app: &TestApp) -> Raw {
        let address = app.base.trim_start_matches("http://");
        Raw {
            socket: TcpStream::connect(address).await.expect("connect"),
            read: String::new(),
        }
    }

    pub async fn send(&mut self, method_and_path: &str, token: &str) {
        let request = format!(
            "{method_and_path} HTTP/1.1\r\nHost: pushlog\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        self.socket
            .write_all(request.as_bytes())
            .await
            .expect("send");
    }

    /// Reads until `needle` has been received; `false` if the server closed
    /// the connection first.
    pub async fn read_until(&mut self, needle: &str) -> bool {
        let reading = async {
            let mut buf = [0u8; 4096];
            while !self.read.contains(needle) {
                match self.socket.read(&mut buf).await {
                    // A reset counts as the server closing.
                    Ok(0) | Err(_) => return false,
                    Ok(n) => self.read.push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
            true
        };
        tokio::time::timeout(PATIENCE, reading)
            .await
            .expect("the server answers within the patience window")
    }

    /// The next response head; what follows it stays in `read`.
    pub async fn head(&mut self) -> Head {
        assert!(self.read_until("\r\n\r\n").await, "closed before a head");
        let (head, rest) = self.read.split_once("\r\n\r\n").expect("a head");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|line| line.split_once(": "))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
            .collect();
        self.read = rest.to_owned();
        Head { status, headers }
    }

    /// Reads until `len` bytes follow the last head.
    pub async fn read_body(&mut self, len: usize) {
        let mut buf = [0u8; 4096];
        while self.read.len() < len {
            let n = tokio::time::timeout(PATIENCE, self.socket.read(&mut buf))
                .await
                .expect("the body within the patience window")
                .expect("read");
            assert!(n > 0, "closed mid-body");
            self.read.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Reads until the server closes; what it sent meanwhile is in `read`.
    pub async fn until_closed(&mut self) {
        assert!(
            !self.read_until("\u{0}never sent\u{0}").await,
            "the connection stays open"
        );
    }
}

/// A WebSocket upgrade request with the token in the query, and RFC 6455's
/// own example key (whose accept value the server's answer must carry).
pub fn websocket_handshake(token: &str) -> Vec<u8> {
    format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: pushlog\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes()
}

/// A client's text frame: masked, as RFC 6455 requires of clients.
pub fn masked_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    assert!(payload.len() < 126, "short frames only");
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
