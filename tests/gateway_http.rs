//! The gateway on a real port (0) against hostile HTTP clients: slow, truncated, oversized,
//! malformed. Each gets its 4xx or is cut off, and the server keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use veil_config::{TenantsFile, TopicsConfig};
use veil_gateway::allowlist::Allowlist;
use veil_gateway::pseudonym::KeyStore;
use veil_gateway::server::{Gateway, GatewayConfig, serve};
use veil_gateway::sink::MemoryPublisher;

const AUTH: &str = "Authorization: Basic d2tfZGVtb190MTAwMDo=\r\n"; // wk_demo_t1000:
const MESSAGE: &str = r#"{"type":"track","event":"Document Opened","userId":"u-1","properties":{"feature":"preview"}}"#;

fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn hostile_clients_get_their_4xx_and_the_server_keeps_serving() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let keys = tempfile::tempdir().expect("tempdir");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let publisher = MemoryPublisher::default();
    let gateway = Arc::new(Gateway::new(
        GatewayConfig {
            request_read_timeout_ms: 500,
            ..GatewayConfig::default()
        },
        Arc::new(
            Allowlist::load(&root.join("allowlist.yaml"))
                .expect("policy")
                .compile(),
        ),
        TenantsFile::load(&root.join("tenants.yaml"))
            .expect("tenants")
            .write_key_index(),
        KeyStore::open(keys.path()).expect("keystore"),
        &TopicsConfig::default(),
        Arc::new(publisher.clone()),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, server) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port 0");
        let address = listener.local_addr().expect("address");
        (
            address,
            tokio::spawn(serve(listener, gateway, async {
                let _ = stopped.await;
            })),
        )
    });

    // A slow client that never finishes its headers is cut off.
    let mut slow_headers = TcpStream::connect(address).expect("connect");
    slow_headers
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    slow_headers
        .write_all(b"POST /v1/track HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let mut buffer = [0u8; 256];
    let started = std::time::Instant::now();
    let read = slow_headers.read(&mut buffer).unwrap_or(0);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off at the read deadline"
    );
    let text = String::from_utf8_lossy(&buffer[..read]);
    assert!(read == 0 || text.starts_with("HTTP/1.1 408"), "{text}");

    // A body that stops arriving: 408 once the deadline passes.
    let mut stalled = TcpStream::connect(address).expect("connect");
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stalled
        .write_all(
            format!(
                "POST /v1/track HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 1000\r\n\r\n{{\"type\""
            )
            .as_bytes(),
        )
        .expect("write");
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_unreadable"), "{answer}");

    // A truncated body (the client closes its side early).
    let mut truncated = TcpStream::connect(address).expect("connect");
    truncated
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    truncated
        .write_all(
            format!(
                "POST /v1/track HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 1000\r\n\r\n{}",
                &MESSAGE[..20]
            )
            .as_bytes(),
        )
        .expect("write");
    truncated
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut answer = String::new();
    let _ = truncated.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );

    // Garbage instead of HTTP.
    let answer = exchange(
        address,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    // Declared too large: refused without reading it all.
    let answer = exchange(
        address,
        format!("POST /v1/batch HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 10000000\r\nConnection: close\r\n\r\n{{").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    // Wrong method, unknown path, malformed JSON.
    assert!(
        exchange(
            address,
            b"GET /v1/track HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .starts_with("HTTP/1.1 405")
    );
    assert!(exchange(address, &post("/v2/track", MESSAGE)).starts_with("HTTP/1.1 404"));
    let answer = exchange(address, &post("/v1/track", "{\"type\":\"track\",,}"));
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("malformed_json"),
        "{answer}"
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let answer = exchange(address, &post("/v1/track", &deep));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // After all that, a good request is served.
    let answer = exchange(address, &post("/v1/track", MESSAGE));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(publisher.records().len(), 1);

    let _ = stop.send(());
    runtime
        .block_on(server)
        .expect("server task")
        .expect("server");
}
