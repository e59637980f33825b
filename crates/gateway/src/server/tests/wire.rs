//! The gateway on a real port (0) against clients that send their body too slowly or with
//! broken framing: a 408 only when the deadline for the whole body passes, a 400 otherwise.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const HEAD: &str =
    "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n";

/// Serves a gateway whose whole-body deadline is `deadline_ms`; the sender stops it when dropped.
async fn start(deadline_ms: u64) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let harness = harness_with(GatewayConfig {
        request_read_timeout_ms: deadline_ms,
        ..GatewayConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port 0");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _keys = harness._keys;
        let _ = serve(listener, harness.gateway, async {
            let _ = stopped.await;
        })
        .await;
    });
    (address, stop)
}

fn head_with(extra: &str) -> String {
    format!(
        "{HEAD}Authorization: {}\r\n{extra}\r\n",
        basic("wk_test_baseline")
    )
}

/// Reads an answer until the server closes (at most 5 s): its status and JSON error code.
async fn answer_of(stream: &mut TcpStream) -> (String, Value) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(read)) = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk)).await
    {
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text.get(..12).unwrap_or_default().to_owned();
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn the_read_deadline_covers_the_whole_body_not_the_gap_between_bytes() {
    let (address, _stop) = start(400).await;
    let body = track("Document Opened").to_string();
    let stream = TcpStream::connect(address).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let head = head_with(&format!("Content-Length: {}\r\n", body.len()));
    writer.write_all(head.as_bytes()).await.expect("head");
    // One byte every 50 ms: never idle for 400 ms, but the body would take many seconds.
    let trickle = tokio::spawn(async move {
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut bytes)).await;
    let elapsed = started.elapsed();
    trickle.abort();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"body_unreadable\""), "{text}");
    assert!(
        elapsed < Duration::from_millis(2_000),
        "cut off at the deadline, not when the body ended: {elapsed:?}"
    );
}

#[tokio::test]
async fn broken_framing_and_truncated_bodies_are_400_at_once_not_408() {
    // A long deadline: these answers must not wait for it.
    let (address, _stop) = start(10_000).await;
    let chunked = head_with("Transfer-Encoding: chunked\r\n");
    let message = track("Document Opened").to_string();
    let cases = [
        (
            format!("{chunked}zz\r\n{message}\r\n0\r\n\r\n"),
            true,
            "malformed_framing",
        ),
        (
            format!("{chunked}ffffffffffffffffff\r\n{message}\r\n0\r\n\r\n"),
            true,
            "malformed_framing",
        ),
        // Shorter than its Content-Length, then the client closes its write side.
        (
            format!(
                "{}{}",
                head_with("Content-Length: 1000\r\n"),
                &message[..20]
            ),
            false,
            "incomplete_body",
        ),
        // A chunked body whose last chunk never comes.
        (
            format!("{chunked}5\r\n{{\"typ\r\n"),
            false,
            "incomplete_body",
        ),
    ];
    for (request, keep_open, code) in cases {
        let started = Instant::now();
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        if !keep_open {
            stream.shutdown().await.expect("shutdown");
        }
        let (status, answer) = answer_of(&mut stream).await;
        assert_eq!(status, "HTTP/1.1 400", "{code}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{code}: answered at once"
        );
        let text = answer.to_string();
        assert!(
            !text.contains("zz") && !text.contains("ffff"),
            "no value echoed: {text}"
        );
    }
}
