//! HTTP/2 abuse written as raw frames (rows A13–A18 of
//! shared/design/hardening.md): each attack ends in a refused stream or a
//! closed connection, guest work never outlives it, memory and time stay
//! bounded, and other clients are served throughout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types, flags, settings and error codes (RFC 9113).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
const INITIAL_WINDOW_SIZE: u16 = 0x4;
const PROTOCOL_ERROR: u32 = 0x1;
const REFUSED_STREAM: u32 = 0x7;
const COMPRESSION_ERROR: u32 = 0x9;

/// One raw HTTP/2 frame: 9-byte header, then the payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn settings_payload(settings: &[(u16, u32)]) -> Vec<u8> {
    settings
        .iter()
        .flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
        .collect()
}

/// An HPACK integer with a `prefix_bits`-bit prefix after the bits of
/// `first` (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u8, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A literal header field without indexing whose name is static-table
/// entry `index` (below 15), value not Huffman-coded.
fn hpack_literal(out: &mut Vec<u8>, index: u8, value: &[u8]) {
    out.push(index);
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

/// The header block of `GET http://berth.test{path}`.
fn get_block(path: &str) -> Vec<u8> {
    // `:method: GET` and `:scheme: http` are static entries 2 and 6.
    let mut block = vec![0x82, 0x86];
    hpack_literal(&mut block, 4, path.as_bytes()); // :path
    hpack_literal(&mut block, 1, b"berth.test"); // :authority
    block
}

/// The HEADERS frame of a complete GET request on `stream`.
fn get_request(stream: u32, path: &str) -> Vec<u8> {
    h2_frame(HEADERS, END_HEADERS | END_STREAM, stream, &get_block(path))
}

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let code = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(code.try_into().ok()?))
    }
}

/// What the server did next.
#[derive(Debug)]
enum Next {
    Frame(Frame),
    Closed,
    Silent,
}

/// A raw HTTP/2 client connection: writes whatever it is given, reads
/// frames one at a time, and acknowledges SETTINGS and PING as a
/// well-behaved peer does (so only the abuse under test is abuse).
struct RawH2 {
    tcp: TcpStream,
}

impl RawH2 {
    /// Connects, sends the preface and `settings`, and reads the server's
    /// SETTINGS.
    async fn connect(server: &TestServer, settings: &[(u16, u32)]) -> Self {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut out = H2_PREFACE.to_vec();
        out.extend(h2_frame(SETTINGS, 0, 0, &settings_payload(settings)));
        tcp.write_all(&out).await.unwrap();
        let mut conn = Self { tcp };
        match conn.next(Duration::from_secs(5)).await {
            Next::Frame(frame) if frame.kind == SETTINGS => conn,
            other => panic!("expected the server's SETTINGS, got {other:?}"),
        }
    }

    /// Writes `bytes`; false once the server has closed the connection.
    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// The next frame, unless the server closes the connection or sends
    /// nothing for `within`.
    async fn next(&mut self, within: Duration) -> Next {
        let mut head = [0u8; 9];
        match tokio::time::timeout(within, self.tcp.read_exact(&mut head)).await {
            Err(_) => return Next::Silent,
            Ok(Err(_)) => return Next::Closed,
            Ok(Ok(_)) => {}
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        if self.tcp.read_exact(&mut payload).await.is_err() {
            return Next::Closed;
        }
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let frame = Frame {
            kind: head[3],
            flags: head[4],
            stream,
            payload,
        };
        if frame.flags & ACK == 0 && matches!(frame.kind, SETTINGS | PING) {
            // A SETTINGS ACK is empty; a PING ACK echoes the payload.
            let echo = if frame.kind == PING {
                &frame.payload[..]
            } else {
                &[]
            };
            self.send(&h2_frame(frame.kind, ACK, 0, echo)).await;
        }
        Next::Frame(frame)
    }

    /// Every frame until the server closes the connection (`true`) or
    /// sends nothing for `quiet` (`false`).
    async fn drain(&mut self, quiet: Duration) -> (Vec<Frame>, bool) {
        let mut frames = Vec::new();
        loop {
            match self.next(quiet).await {
                Next::Frame(frame) => frames.push(frame),
                Next::Closed => return (frames, true),
                Next::Silent => return (frames, false),
            }
        }
    }
}

/// A runtime whose wall-clock limit is far beyond every test here: only
/// the defence under test can end a guest in time.
fn patient() -> berth::RuntimeConfig {
    berth::RuntimeConfig {
        wall_time_limit: Duration::from_secs(60),
        ..test_config()
    }
}

/// A13, MadeYouReset: requests the client makes the *server* reset (a
/// WINDOW_UPDATE that overflows the stream's window right after each one:
/// a stream error). Each reset cancels its guest
/// (reset streams do not count against MAX_CONCURRENT_STREAMS, so guests
/// left running would pile up without bound), h2's cap on resets caused by
/// the peer ends the connection with GOAWAY, and the server keeps serving.
#[tokio::test]
async fn http2_made_you_reset_cancels_guests_and_ends_the_connection() {
    let server = TestServer::start_with("suite", patient()).await;
    let mut h2 = RawH2::connect(&server, &[]).await;
    let before = server.runtime.next_request_id();
    let mut sent = 0u32;
    let mut most_alive = 0;
    for i in 0..3000u32 {
        let stream = 2 * i + 1;
        let mut frames = get_request(stream, "/never");
        // 65 535 + 2^31 - 1 is past the largest window: FLOW_CONTROL_ERROR.
        let overflow = 0x7fff_ffffu32.to_be_bytes();
        frames.extend(h2_frame(WINDOW_UPDATE, 0, stream, &overflow));
        if !h2.send(&frames).await {
            break;
        }
        sent += 1;
        most_alive = most_alive.max(server.runtime.live_instances());
    }
    let (frames, closed) = h2.drain(Duration::from_secs(5)).await;
    let resets = frames.iter().filter(|f| f.kind == RST_STREAM).count();
    let goaway = frames.iter().find(|f| f.kind == GOAWAY);
    let reached = server.runtime.next_request_id() - before - 1;
    eprintln!(
        "MadeYouReset: {sent} sent, {resets} reset by the server, {reached} reached the \
         service, at most {most_alive} guests alive, GOAWAY {:?}, closed {closed}",
        goaway.and_then(Frame::error_code)
    );
    assert!(goaway.is_some() && closed, "the connection was not ended");
    assert!(resets > 0);
    assert!(most_alive <= 100, "{most_alive} guests alive at once");
    wait_until_idle(&server, Duration::from_secs(5)).await;
    assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
}

/// A15, HPACK bomb: one header of 4 000 bytes entered in the dynamic table,
/// then referenced 16 000 times (one byte each: 64 MB decoded from a 20 KB
/// block). The decoded size limit refuses the request before any guest
/// runs, within bounded time and memory.
#[tokio::test]
async fn http2_hpack_bomb_is_refused_before_the_guest() {
    let server = TestServer::start("suite").await;
    let mut h2 = RawH2::connect(&server, &[]).await;
    let before = server.runtime.next_request_id();
    let rss_before = rss_kib();
    let started = std::time::Instant::now();

    let mut block = get_block("/hello");
    // A literal with incremental indexing and a new name: dynamic entry 62.
    block.push(0x40);
    hpack_int(&mut block, 0, 7, 6);
    block.extend_from_slice(b"x-bomb");
    hpack_int(&mut block, 0, 7, 4000);
    block.extend(std::iter::repeat_n(b'b', 4000));
    // Indexed references to it (0x80 | 62).
    block.extend(std::iter::repeat_n(0xbe, 16_000));
    let (first, rest) = block.split_at(16_000);
    let mut frames = h2_frame(HEADERS, END_STREAM, 1, first);
    frames.extend(h2_frame(CONTINUATION, END_HEADERS, 1, rest));
    assert!(h2.send(&frames).await);

    // Refused: a 431 and REFUSED_STREAM, a reset, or a GOAWAY.
    let (frames, _closed) = h2.drain(Duration::from_secs(2)).await;
    let answered = frames
        .iter()
        .any(|f| f.stream == 1 && matches!(f.kind, HEADERS | RST_STREAM) || f.kind == GOAWAY);
    assert!(answered, "no refusal among {frames:?}");
    assert!(
        !frames.iter().any(|f| f.kind == DATA && f.stream == 1),
        "stream 1 got a body: {frames:?}"
    );
    assert_eq!(
        server.runtime.next_request_id() - before - 1,
        0,
        "the request reached the service"
    );
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "server memory grew by {grown} KiB");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
}

/// A15, dynamic table abuse: a table size update beyond the size the
/// server allows is a connection error (RFC 7541 names COMPRESSION_ERROR;
/// h2 sends PROTOCOL_ERROR for every HPACK failure).
#[tokio::test]
async fn http2_oversized_hpack_table_update_ends_the_connection() {
    let server = TestServer::start("suite").await;
    let mut h2 = RawH2::connect(&server, &[]).await;
    let mut block = Vec::new();
    hpack_int(&mut block, 0x20, 5, 1 << 30); // dynamic table size update: 1 GiB
    block.extend(get_block("/hello"));
    assert!(
        h2.send(&h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
    );
    let (frames, closed) = h2.drain(Duration::from_secs(5)).await;
    let goaway = frames.iter().find(|f| f.kind == GOAWAY);
    let code = goaway.and_then(Frame::error_code);
    assert!(
        matches!(code, Some(PROTOCOL_ERROR | COMPRESSION_ERROR)),
        "{frames:?}"
    );
    assert!(closed);
    assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
}

/// A16: a client that ignores MAX_CONCURRENT_STREAMS (4 here) and opens
/// 20 streams at once: the ones past the cap are refused (REFUSED_STREAM,
/// safe to retry), never more than 4 guests run, and the 4 admitted finish.
#[tokio::test]
async fn http2_streams_past_max_concurrent_streams_are_refused() {
    let server = TestServer::start_configured(
        "suite",
        patient(),
        berth::ServerConfig {
            h2_max_concurrent_streams: 4,
            ..test_server_config()
        },
    )
    .await;
    let mut h2 = RawH2::connect(&server, &[]).await;
    // Let the server see our SETTINGS ACK before the flood.
    let _ = h2.drain(Duration::from_millis(200)).await;
    let before = server.runtime.next_request_id();
    let flood: Vec<u8> = (0..20u32)
        .flat_map(|i| get_request(2 * i + 1, "/sleep?ms=500"))
        .collect();
    assert!(h2.send(&flood).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive = server.runtime.live_instances();
    let (frames, _) = h2.drain(Duration::from_secs(3)).await;
    let refused = frames
        .iter()
        .filter(|f| f.kind == RST_STREAM && f.error_code() == Some(REFUSED_STREAM))
        .count();
    let answered = frames
        .iter()
        .filter(|f| f.kind == HEADERS && f.stream % 2 == 1)
        .count();
    let reached = server.runtime.next_request_id() - before - 1;
    assert!(alive <= 4, "{alive} guests ran at once");
    assert_eq!(refused, 16, "{frames:?}");
    assert_eq!(answered, 4, "{frames:?}");
    assert_eq!(reached, 4);
    assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
}

/// A17: a client that reads its socket (and answers PINGs) but opens no
/// flow-control window (SETTINGS_INITIAL_WINDOW_SIZE = 0) never lets its
/// large response move: the write timeout (1 s here) ends the connection
/// and frees the guest instance, 60 s before its wall clock would.
#[tokio::test]
async fn http2_zero_window_is_cut_off_at_the_write_timeout() {
    let server = TestServer::start_configured(
        "suite",
        patient(),
        berth::ServerConfig {
            write_timeout: Duration::from_secs(1),
            ..test_server_config()
        },
    )
    .await;
    let mut h2 = RawH2::connect(&server, &[(INITIAL_WINDOW_SIZE, 0)]).await;
    assert!(h2.send(&get_request(1, "/large?bytes=268435456")).await);
    let started = std::time::Instant::now();
    let (frames, closed) = h2.drain(Duration::from_secs(10)).await;
    let elapsed = started.elapsed();
    assert!(closed, "still open after {elapsed:?}: {frames:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    let head = frames.iter().any(|f| f.kind == HEADERS && f.stream == 1);
    assert!(head, "no response head: {frames:?}");
    assert!(
        !frames.iter().any(|f| f.kind == DATA),
        "data beyond a zero window"
    );
    wait_until_idle(&server, Duration::from_secs(2)).await;
    assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
}

/// Writes `frames` as fast as the server takes them (reading and dropping
/// whatever it sends, so its writes never block); returns how many bytes
/// went out before the server closed the connection, or `None` if it was
/// still open after all of them.
async fn h2_flood(server: &TestServer, first: &[u8], frame: &[u8], count: usize) -> Option<usize> {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    let reader = tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let mut sent = 0;
    let mut out = H2_PREFACE.to_vec();
    out.extend(h2_frame(SETTINGS, 0, 0, &[]));
    out.extend_from_slice(first);
    if write.write_all(&out).await.is_err() {
        return Some(0);
    }
    let batch: Vec<u8> = frame.repeat(64);
    for _ in 0..count / 64 {
        if write.write_all(&batch).await.is_err() {
            reader.abort();
            return Some(sent);
        }
        sent += batch.len();
    }
    // Give the server time to act on the last frames.
    let closed = tokio::time::timeout(Duration::from_secs(5), reader).await;
    closed.is_ok().then_some(sent)
}

/// A14: a header block that never ends (HEADERS without END_HEADERS, then
/// CONTINUATION frames forever) is cut once it is over the header-list
/// limit; the server stays healthy.
#[tokio::test]
async fn http2_continuation_flood_is_cut_off() {
    let server = TestServer::start("suite").await;
    // HEADERS for stream 1 (END_STREAM, no END_HEADERS): a literal header
    // whose value the CONTINUATION frames keep extending.
    let mut block = vec![0x00, 0x05];
    block.extend_from_slice(b"x-big");
    block.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0x0f]); // a huge value length
    let headers = h2_frame(HEADERS, END_STREAM, 1, &block);
    let continuation = h2_frame(CONTINUATION, 0, 1, &[b'a'; 16 * 1024]);
    // 64 MiB of CONTINUATION frames.
    let sent = h2_flood(&server, &headers, &continuation, 4096).await;
    let sent = sent.expect("the connection was closed");
    assert!(
        sent < 32 << 20,
        "took {sent} bytes of header block before closing"
    );
    assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
    server.assert_idle().await;
}

/// A18: PING and SETTINGS floods: the server either keeps up with bounded
/// memory or closes the connection; it never falls over, and other
/// clients are served.
#[tokio::test]
async fn http2_ping_and_settings_floods_leave_the_server_healthy() {
    let server = TestServer::start("suite").await;
    let ping = h2_frame(PING, 0, 0, &[7u8; 8]);
    let settings = h2_frame(
        SETTINGS,
        0,
        0,
        &settings_payload(&[(MAX_CONCURRENT_STREAMS, 100)]),
    );
    for flood in [ping, settings] {
        let started = std::time::Instant::now();
        let before = rss_kib();
        // 100 000 frames.
        let _ = h2_flood(&server, &[], &flood, 100_000).await;
        let grown = rss_kib().saturating_sub(before);
        assert!(grown < 64 * 1024, "server memory grew by {grown} KiB");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(get(&server, Proto::H2, "/hello").await.0, 200);
    }
}
