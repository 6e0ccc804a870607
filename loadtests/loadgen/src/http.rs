//! Just enough HTTP/1.1 for a load generator: write a request, read a
//! response head, frame a body by `Content-Length` or chunked encoding.
//! `httparse` parses heads; the rest is here. No pipelining: one request is
//! answered before the next is written, so nothing follows a response body.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::Dialer;
use crate::target::Target;

/// A response head larger than this is not one we should be getting.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Error bodies and publish acknowledgements are small; cap what we keep.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl HttpError {
    /// A short stable name, for counting failures by kind.
    pub fn kind(&self) -> String {
        match self {
            HttpError::Io(error) => format!("io_{:?}", error.kind()).to_lowercase(),
            HttpError::Closed => "closed".into(),
            HttpError::Malformed(_) => "malformed".into(),
            HttpError::Timeout(_) => "timeout".into(),
        }
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub framing: Framing,
    /// The server will close the connection after this response.
    pub closes: bool,
}

/// Reads a response head from `reader`. `buf` holds bytes already read and
/// on return holds whatever followed the head (the start of the body).
pub async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<ResponseHead, HttpError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let head = interpret(&response)?;
                buf.drain(..len);
                return Ok(head);
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Err(HttpError::Malformed("unparseable response head")),
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(HttpError::Malformed("response head too large"));
        }
        if read_more(reader, buf).await? == 0 {
            return Err(HttpError::Closed);
        }
    }
}

fn interpret(response: &httparse::Response<'_, '_>) -> Result<ResponseHead, HttpError> {
    let status = response
        .code
        .ok_or(HttpError::Malformed("no status code"))?;
    let mut framing = Framing::UntilClose;
    let mut closes = response.version == Some(0);
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| HttpError::Malformed("non-UTF-8 header value"))?
            .trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse()
                .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(length);
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().ends_with("chunked") {
                framing = Framing::Chunked;
            }
        } else if header.name.eq_ignore_ascii_case("connection") {
            closes = value.eq_ignore_ascii_case("close");
        }
    }
    // 1xx, 204 and 304 never have a body.
    if status < 200 || status == 204 || status == 304 {
        framing = Framing::Length(0);
    }
    Ok(ResponseHead {
        status,
        framing,
        closes: closes || framing == Framing::UntilClose,
    })
}

/// Appends what the socket has to `buf`; 0 means end of stream.
pub async fn read_more<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
    buf.reserve(8 * 1024);
    reader.read_buf(buf).await
}

/// Decodes `Transfer-Encoding: chunked` incrementally: feed it bytes as they
/// arrive, get the payload bytes out.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
    Done,
}

impl ChunkedDecoder {
    /// Consumes all of `input`, appending decoded payload to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), HttpError> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailers => {
                    let Some(newline) = input.iter().position(|&b| b == b'\n') else {
                        self.push_line(input)?;
                        return Ok(());
                    };
                    self.push_line(&input[..newline])?;
                    input = &input[newline + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.end_line(trim_cr(&line))?;
                }
                ChunkState::Data(remaining) => {
                    let take = remaining.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = match remaining - take {
                        0 => ChunkState::DataEnd,
                        left => ChunkState::Data(left),
                    };
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    fn push_line(&mut self, part: &[u8]) -> Result<(), HttpError> {
        if self.line.len() + part.len() > 4096 {
            return Err(HttpError::Malformed("chunk framing line too long"));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn end_line(&mut self, line: &[u8]) -> Result<(), HttpError> {
        self.state = match self.state {
            ChunkState::Size => {
                let size = line.split(|&b| b == b';').next().unwrap_or_default();
                let size = std::str::from_utf8(size)
                    .ok()
                    .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                    .ok_or(HttpError::Malformed("bad chunk size"))?;
                if size == 0 {
                    ChunkState::Trailers
                } else {
                    ChunkState::Data(size)
                }
            }
            ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
            ChunkState::DataEnd => return Err(HttpError::Malformed("chunk data overran its size")),
            ChunkState::Trailers if line.is_empty() => ChunkState::Done,
            ChunkState::Trailers => ChunkState::Trailers,
            ChunkState::Data(_) | ChunkState::Done => self.state,
        };
        Ok(())
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One keep-alive HTTP/1.1 connection for request/response calls (publishing).
/// Reconnects by itself after the server closes it.
pub struct HttpClient {
    dialer: Dialer,
    /// Which source address this client uses; see [`Dialer::connect`].
    index: usize,
    target: Target,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl HttpClient {
    pub fn new(dialer: Dialer, index: usize, target: Target) -> HttpClient {
        HttpClient {
            dialer,
            index,
            target,
            stream: None,
            buf: Vec::new(),
        }
    }

    /// POSTs a JSON body, with a bearer token if given, and reads the whole
    /// response. On any error the connection is dropped, so the next call
    /// starts clean.
    pub async fn post_json(
        &mut self,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let result = tokio::time::timeout(timeout, self.exchange(path, token, body)).await;
        match result {
            Ok(Ok((response, closes))) => {
                if closes {
                    self.stream = None;
                }
                Ok(response)
            }
            Ok(Err(error)) => {
                self.stream = None;
                Err(error)
            }
            Err(_) => {
                self.stream = None;
                Err(HttpError::Timeout(timeout))
            }
        }
    }

    async fn exchange(
        &mut self,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Result<(Response, bool), HttpError> {
        if self.stream.is_none() {
            self.stream = Some(self.dialer.connect(self.index).await?);
            self.buf.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(HttpError::Closed);
        };
        let authorization = token
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.target.authority,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).await?;

        let head = read_head(stream, &mut self.buf).await?;
        let body = read_body(stream, &mut self.buf, head.framing).await?;
        Ok((
            Response {
                status: head.status,
                body,
            },
            head.closes,
        ))
    }
}

/// Reads a whole body framed as `framing`; `buf` holds its first bytes.
async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    framing: Framing,
) -> Result<Vec<u8>, HttpError> {
    match framing {
        Framing::Length(length) => {
            if length > MAX_BODY_BYTES {
                return Err(HttpError::Malformed("response body too large"));
            }
            while buf.len() < length {
                if read_more(reader, buf).await? == 0 {
                    return Err(HttpError::Closed);
                }
            }
            let body = buf[..length].to_vec();
            buf.drain(..length);
            Ok(body)
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            let mut body = Vec::new();
            loop {
                decoder.feed(buf, &mut body)?;
                buf.clear();
                if decoder.is_done() {
                    return Ok(body);
                }
                if body.len() > MAX_BODY_BYTES {
                    return Err(HttpError::Malformed("response body too large"));
                }
                if read_more(reader, buf).await? == 0 {
                    return Err(HttpError::Closed);
                }
            }
        }
        Framing::UntilClose => {
            while read_more(reader, buf).await? != 0 {
                if buf.len() > MAX_BODY_BYTES {
                    return Err(HttpError::Malformed("response body too large"));
                }
            }
            Ok(std::mem::take(buf))
        }
    }
}

/// The `error` code of a pushlog JSON error body (`{"error": …}`), or `-`.
pub fn error_code(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_across_arbitrary_splits() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        for split in 0..wire.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut out = Vec::new();
            decoder.feed(&wire[..split], &mut out).unwrap();
            decoder.feed(&wire[split..], &mut out).unwrap();
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(decoder.is_done());
        }
    }

    #[test]
    fn a_chunk_longer_than_its_size_is_malformed() {
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        assert!(decoder.feed(b"2\r\nabc\r\n", &mut out).is_err());
    }

    #[tokio::test]
    async fn heads_are_read_and_the_rest_kept() {
        let wire: &[u8] = b"HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\nbody";
        let mut reader = wire;
        let mut buf = Vec::new();
        let head = read_head(&mut reader, &mut buf).await.unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(head.framing, Framing::Length(4));
        assert!(!head.closes);
        let body = read_body(&mut reader, &mut buf, head.framing)
            .await
            .unwrap();
        assert_eq!(body, b"body");
    }
}
