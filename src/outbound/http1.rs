//! One HTTP/1.1 exchange on a connection that the call's task drives itself. The request is
//! written in one piece. The answer's head is parsed where it was read (`httparse`), keeping
//! only what the forwarder reads. Its body is read by its length, in chunks, or to the
//! connection's end. It does only what a forwarder needs: no pipelining, no upgrades, no
//! `Expect`. An interim answer (1xx) before the final one is skipped.
//!
//! Every size is bounded: the head ([`MAX_HEAD`] bytes, [`MAX_HEADERS`] fields), a chunk's size
//! line and the trailers; the body by the caller's cap.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderMap, TRANSFER_ENCODING};
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::Capped;

/// The longest answer head read.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields an answer head may have.
pub const MAX_HEADERS: usize = 128;
/// The longest line of a chunked body (a chunk's size with its extensions, a trailer field).
const MAX_LINE: usize = 4096;
/// The most bytes of trailers after a chunked body.
const MAX_TRAILERS: usize = 16 * 1024;
/// How much is read from the connection at a time.
const READ_SIZE: usize = 16 * 1024;

/// Why an exchange failed. The words never hold the request's target or headers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot send the request")]
    Send(#[source] io::Error),
    /// Nothing of an answer came before the connection ended or failed.
    #[error("the connection closed without an answer")]
    NoAnswer(#[source] Option<io::Error>),
    #[error("the connection closed before the answer ended")]
    Closed,
    #[error("the answer broke off")]
    Read(#[source] io::Error),
    #[error("the answer is not valid HTTP/1.1: {0}")]
    Malformed(&'static str),
    #[error("the answer's head is longer than {MAX_HEAD} bytes or has more than {MAX_HEADERS} fields")]
    HeadTooLarge,
    #[error("the request cannot be written: {0}")]
    Request(&'static str),
}

/// A connection to the backend, plain or over TLS.
pub enum Stream {
    Tcp(TcpStream),
    // Boxed: a TLS session's state is kilobytes.
    Tls(Box<TlsStream<TcpStream>>),
}

/// An open connection, and what was read on it past the answers taken so far.
pub struct Connection {
    stream: Stream,
    buffer: Vec<u8>,
}

/// What the forwarder reads of an answer's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub location: Option<String>,
}

/// Where an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// At the connection's end: the connection cannot be kept.
    ToEnd,
}

/// An answer whose head was read, its body still to come.
pub struct Answer {
    pub head: Head,
    framing: Framing,
    /// The backend lets the connection carry another request once this answer is read whole.
    reusable: bool,
}

/// A request to send: `target` is its path and query.
pub struct Request<'a> {
    pub method: &'a Method,
    pub target: &'a str,
    /// Host, framing and connection headers among them are left out: the exchange writes its own.
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Connection {
    pub fn new(stream: Stream) -> Connection {
        Connection { stream, buffer: Vec::new() }
    }

    /// Whether the connection is open and quiet: the backend neither closed it nor sent
    /// anything unasked. Polled in place, so a kept connection is checked as it is taken.
    pub fn is_idle(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        let mut byte = [0; 1];
        Pin::new(&mut self.stream).poll_read(cx, &mut ReadBuf::new(&mut byte)).is_pending()
    }

    /// Sends `request` for `host` and reads its answer's head.
    pub async fn send(&mut self, host: &str, request: &Request<'_>) -> Result<Answer, Error> {
        let written = encode(host, request)?;
        self.stream.write_all(&written).await.map_err(Error::Send)?;
        self.stream.flush().await.map_err(Error::Send)?;
        self.read_head(request.method).await
    }

    async fn read_head(&mut self, method: &Method) -> Result<Answer, Error> {
        let mut answered = false;
        loop {
            if !self.buffer.is_empty() {
                answered = true;
                if let Some((answer, length)) = parse_head(&self.buffer, method)? {
                    self.buffer.drain(..length);
                    match answer {
                        Some(answer) => return Ok(answer),
                        // An interim answer: the final one follows.
                        None => continue,
                    }
                }
                if self.buffer.len() >= MAX_HEAD {
                    return Err(Error::HeadTooLarge);
                }
            }
            match self.fill().await {
                Ok(0) if answered => return Err(Error::Closed),
                Ok(0) => return Err(Error::NoAnswer(None)),
                Ok(_) => {}
                Err(err) if answered => return Err(Error::Read(err)),
                Err(err) => return Err(Error::NoAnswer(Some(err))),
            }
        }
    }

    /// Reads the body of `answer`, stopping once it is longer than `max_bytes`: the body, and
    /// whether the connection may carry another request (the answer was read whole, and the
    /// backend keeps the connection).
    pub async fn read_body(&mut self, answer: &Answer, max_bytes: u64) -> Result<(Capped, bool), Error> {
        let mut capped = Capped { body: Vec::new(), cut: false };
        let whole = match answer.framing {
            Framing::Length(length) => self.read_length(length, &mut capped, max_bytes).await?,
            Framing::Chunked => self.read_chunks(&mut capped, max_bytes).await?,
            Framing::ToEnd => self.read_to_end(&mut capped, max_bytes).await?,
        };
        // Bytes past the answer were not asked for: the connection's state is not known.
        let reusable = whole && answer.reusable && self.buffer.is_empty();
        Ok((capped, reusable))
    }

    async fn read_length(&mut self, length: u64, capped: &mut Capped, max_bytes: u64) -> Result<bool, Error> {
        let mut left = length;
        loop {
            let take = self.buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            left -= take as u64;
            let fits = capped.push(&self.buffer[..take], max_bytes);
            self.buffer.drain(..take);
            if !fits {
                return Ok(false);
            }
            if left == 0 {
                return Ok(true);
            }
            if self.fill().await.map_err(Error::Read)? == 0 {
                return Err(Error::Closed);
            }
        }
    }

    async fn read_to_end(&mut self, capped: &mut Capped, max_bytes: u64) -> Result<bool, Error> {
        loop {
            let fits = capped.push(&self.buffer, max_bytes);
            self.buffer.clear();
            if !fits {
                return Ok(false);
            }
            if self.fill().await.map_err(Error::Read)? == 0 {
                return Ok(false);
            }
        }
    }

    async fn read_chunks(&mut self, capped: &mut Capped, max_bytes: u64) -> Result<bool, Error> {
        loop {
            let size = self.line().await?;
            // The size, in hex, before any extension (`;name=value`).
            let digits = size.split(|&it| it == b';').next().unwrap_or_default().trim_ascii();
            let size = parse_hex(digits).ok_or(Error::Malformed("a chunk's size"))?;
            if size == 0 {
                break;
            }
            if !self.read_length(size, capped, max_bytes).await? {
                return Ok(false);
            }
            if !self.line().await?.is_empty() {
                return Err(Error::Malformed("a chunk longer than its size"));
            }
        }
        let mut trailers = 0;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                return Ok(true);
            }
            trailers += line.len();
            if trailers > MAX_TRAILERS {
                return Err(Error::Malformed("trailers too long"));
            }
        }
    }

    /// The next line of the body, without its line end, taken from the buffer.
    async fn line(&mut self) -> Result<Vec<u8>, Error> {
        let mut searched = 0;
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.buffer[searched..]) {
                let end = searched + at;
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            searched = self.buffer.len();
            if searched > MAX_LINE {
                return Err(Error::Malformed("a line of the chunked body too long"));
            }
            if self.fill().await.map_err(Error::Read)? == 0 {
                return Err(Error::Closed);
            }
        }
    }

    /// Reads what the connection has into the buffer: how many bytes, 0 at its end.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buffer.reserve(READ_SIZE);
        self.stream.read_buf(&mut self.buffer).await
    }
}

/// The request's bytes: its line, `Host`, the headers, the body's length and the body.
fn encode(host: &str, request: &Request<'_>) -> Result<Vec<u8>, Error> {
    // The target is the path and query of a parsed URL; anything else would split the line.
    if !request.target.starts_with('/') || !request.target.bytes().all(|it| it.is_ascii_graphic()) {
        return Err(Error::Request("the target is not a path"));
    }
    let headers: usize =
        request.headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    let mut out = Vec::with_capacity(64 + request.target.len() + host.len() + headers + request.body.len());
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(request.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in request.headers {
        if name == HOST || name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        // Names and values are checked as they are made (`http`): no line ends.
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // As other clients do: a length whenever there is a body, or a method that expects one.
    let expects_body = matches!(*request.method, Method::POST | Method::PUT | Method::PATCH);
    if !request.body.is_empty() || expects_body {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(request.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(request.body);
    Ok(out)
}

/// The answer whose head starts `buffer`, and the head's length; `None` while the head is not
/// all there. The answer is `None` for an interim (1xx) answer.
fn parse_head(buffer: &[u8], method: &Method) -> Result<Option<(Option<Answer>, usize)>, Error> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let length = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadTooLarge),
        Err(_) => return Err(Error::Malformed("the head")),
    };
    let code = parsed.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| Error::Malformed("the status"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Error::Malformed("an upgrade no request asked for"));
    }
    if status.is_informational() {
        return Ok(Some((None, length)));
    }
    let mut head = Head { status, content_type: None, location: None };
    let (mut chunked, mut encoded, mut close) = (false, false, false);
    let mut content_length: Option<u64> = None;
    for field in parsed.headers.iter() {
        let name = field.name;
        let text = || std::str::from_utf8(field.value).ok().map(str::to_owned);
        if name.eq_ignore_ascii_case("content-type") {
            head.content_type = text();
        } else if name.eq_ignore_ascii_case("location") {
            head.location = text();
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = parse_decimal(field.value).ok_or(Error::Malformed("the content-length"))?;
            if content_length.is_some_and(|it| it != length) {
                return Err(Error::Malformed("two different content-lengths"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            // Only the last coding says how the body ends.
            let last = field.value.rsplit(|&it| it == b',').next().unwrap_or_default();
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close |=
                field.value.split(|&it| it == b',').any(|it| it.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let no_body = *method == Method::HEAD || matches!(code, 204 | 304);
    let framing = match (no_body, encoded, chunked, content_length) {
        (true, ..) => Framing::Length(0),
        (false, true, true, _) => Framing::Chunked,
        (false, true, false, _) => Framing::ToEnd,
        (false, false, _, Some(length)) => Framing::Length(length),
        (false, false, _, None) => Framing::ToEnd,
    };
    // An HTTP/1.0 answer, or one with both framings (RFC 9112 §6.3), ends its connection.
    let reusable = parsed.version == Some(1)
        && !close
        && framing != Framing::ToEnd
        && !(encoded && content_length.is_some());
    Ok(Some((Some(Answer { head, framing, reusable }), length)))
}

fn parse_decimal(text: &[u8]) -> Option<u64> {
    let text = text.trim_ascii();
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u64, |sum, &digit| sum.checked_mul(10)?.checked_add(u64::from(digit - b'0')))
}

fn parse_hex(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 15 {
        return None;
    }
    text.iter().try_fold(0u64, |sum, &digit| Some(sum * 16 + u64::from(char::from(digit).to_digit(16)?)))
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(it) => Pin::new(it).poll_read(cx, buf),
            Stream::Tls(it) => Pin::new(it.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(it) => Pin::new(it).poll_write(cx, buf),
            Stream::Tls(it) => Pin::new(it.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(it) => Pin::new(it).poll_flush(cx),
            Stream::Tls(it) => Pin::new(it.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(it) => Pin::new(it).poll_shutdown(cx),
            Stream::Tls(it) => Pin::new(it.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, method: &Method) -> Result<Option<(Option<Answer>, usize)>, Error> {
        parse_head(text.as_bytes(), method)
    }

    fn framing(text: &str) -> (Framing, bool) {
        let answer = head(text, &Method::GET).unwrap().unwrap().0.unwrap();
        (answer.framing, answer.reusable)
    }

    #[test]
    fn the_head_says_where_the_body_ends_and_whether_the_connection_stays() {
        let ok = "HTTP/1.1 200 OK\r\n";
        assert_eq!(framing(&format!("{ok}content-length: 12\r\n\r\n")), (Framing::Length(12), true));
        assert_eq!(framing(&format!("{ok}transfer-encoding: chunked\r\n\r\n")), (Framing::Chunked, true));
        assert_eq!(
            framing(&format!("{ok}transfer-encoding: gzip, Chunked\r\n\r\n")),
            (Framing::Chunked, true)
        );
        assert_eq!(
            framing(&format!("{ok}transfer-encoding: chunked, gzip\r\n\r\n")),
            (Framing::ToEnd, false)
        );
        assert_eq!(framing(&format!("{ok}\r\n")), (Framing::ToEnd, false));
        assert_eq!(
            framing(&format!("{ok}content-length: 3\r\nconnection: Close\r\n\r\n")),
            (Framing::Length(3), false)
        );
        assert_eq!(framing("HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n"), (Framing::Length(3), false));
        // Both framings: the encoding wins, and the connection ends with the answer.
        let both = format!("{ok}content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(framing(&both), (Framing::Chunked, false));
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\n"),
            (Framing::Length(0), true)
        );
        let answer =
            head(&format!("{ok}content-length: 3\r\n\r\n"), &Method::HEAD).unwrap().unwrap().0.unwrap();
        assert_eq!(answer.framing, Framing::Length(0));
    }

    #[test]
    fn the_head_keeps_the_fields_the_forwarder_reads() {
        let text =
            "HTTP/1.1 302 Found\r\nContent-Type: text/plain\r\nLOCATION: /next\r\nx-other: 1\r\n\r\nbody";
        let (answer, length) = head(text, &Method::GET).unwrap().unwrap();
        let answer = answer.unwrap();
        assert_eq!(length, text.len() - 4);
        assert_eq!(answer.head.status, StatusCode::FOUND);
        assert_eq!(answer.head.content_type.as_deref(), Some("text/plain"));
        assert_eq!(answer.head.location.as_deref(), Some("/next"));
    }

    #[test]
    fn bad_heads_are_errors_and_partial_ones_wait() {
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le", &Method::GET).unwrap().is_none());
        assert!(head("HTTP/1.1 100 Continue\r\n\r\n", &Method::GET).unwrap().unwrap().0.is_none());
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 99 Odd\r\n\r\n",
            "SMTP ready\r\n\r\n",
        ] {
            assert!(head(bad, &Method::GET).is_err(), "{bad:?}");
        }
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "x: 1\r\n".repeat(MAX_HEADERS + 1));
        assert!(matches!(head(&many, &Method::GET), Err(Error::HeadTooLarge)));
        // The same length twice is one length.
        let twice = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(framing(twice), (Framing::Length(2), true));
    }

    #[test]
    fn a_request_is_written_with_its_own_host_and_length() {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "k".parse().unwrap());
        headers.insert(HOST, "elsewhere".parse().unwrap());
        headers.insert(CONTENT_LENGTH, "999".parse().unwrap());
        headers.insert(TRANSFER_ENCODING, "chunked".parse().unwrap());
        let request = Request { method: &Method::POST, target: "/pets?x=1", headers: &headers, body: b"{}" };
        let written = String::from_utf8(encode("api:8080", &request).unwrap()).unwrap();
        assert_eq!(
            written,
            "POST /pets?x=1 HTTP/1.1\r\nhost: api:8080\r\nx-api-key: k\r\ncontent-length: 2\r\n\r\n{}"
        );
        let empty = Request { method: &Method::GET, target: "/", headers: &HeaderMap::new(), body: b"" };
        assert_eq!(encode("h", &empty).unwrap(), b"GET / HTTP/1.1\r\nhost: h\r\n\r\n");
        let post = Request { method: &Method::POST, ..empty };
        assert!(String::from_utf8(encode("h", &post).unwrap()).unwrap().contains("content-length: 0\r\n"));
        for target in ["", "x", "/a b", "/a\r\nx: y", "/\u{e9}"] {
            let request = Request { method: &Method::GET, target, headers: &HeaderMap::new(), body: b"" };
            assert!(encode("h", &request).is_err(), "{target:?}");
        }
    }

    #[test]
    fn numbers_are_read_strictly() {
        assert_eq!(parse_decimal(b" 42 "), Some(42));
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_hex(b"1aF"), Some(0x1af));
        assert_eq!(parse_hex(b"0x1"), None);
        assert_eq!(parse_hex(b"fffffffffffffffff"), None);
    }
}
