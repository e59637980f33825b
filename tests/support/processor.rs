//! Driving `veil processor` processes against the test broker and reading back what they stored.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::Value;
use veil_gateway::sink::{MAX_PACKED_BYTES, RecordBatch};

use super::cli::veil;
use super::repo_root;

/// The sanitized topic of the test tenant's region.
pub const SANITIZED_TOPIC: &str = "veil.sanitized.us";

/// Sanitized messages as the gateway writes them: `veil filter` over reference traffic.
pub fn sanitized_messages(count: usize, keys: &Path) -> Vec<Value> {
    let input = super::traffic::gen_events(count, 5);
    let keys = keys.to_str().expect("utf8 path");
    let output = veil(
        &["filter", "--tenant", "t-1000", "--keystore", keys],
        &input,
    );
    output
        .stdout
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("JSON"))
        .collect()
}

/// The `messageId` of a sanitized message.
pub fn message_id(message: &Value) -> String {
    message["messageId"].as_str().expect("id").to_owned()
}

/// Queues `request`'s messages as the gateway produces one request: keyed by the user's
/// pseudonym and packed into one record per partition of [`SANITIZED_TOPIC`] (3 partitions).
pub fn send_request(
    producer: &FutureProducer,
    request: &[&Value],
    deliveries: &mut Vec<DeliveryFuture>,
) {
    let mut batch = RecordBatch::default();
    batch.set_shared_key(b"t-1000");
    for message in request {
        let key = format!(
            "t-1000/{}",
            message["pseudonyms"]["userId"].as_str().unwrap_or("none")
        );
        batch.push_owned(
            Arc::from(SANITIZED_TOPIC),
            key.as_bytes(),
            message.to_string().as_bytes(),
        );
    }
    for record in batch.packed(MAX_PACKED_BYTES, |_| Some(3)) {
        let mut future_record = FutureRecord::to(record.topic)
            .key(record.key)
            .payload(record.payload.as_ref());
        future_record.partition = record.partition;
        deliveries.push(producer.send_result(future_record).expect("queued"));
    }
}

/// `veil processor` on `bootstrap` storing into `data`, with small flushes, 3 partitions a
/// topic, metrics on `metrics_port` and its log in `log`.
pub fn processor_command(bootstrap: &str, data: &Path, metrics_port: u16, log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_veil"));
    command
        .current_dir(repo_root())
        .args(["processor", "--kafka", bootstrap, "--data-dir"])
        .arg(data)
        .env("VEIL_PROCESSOR__FLUSH_ROWS", "150")
        .env("VEIL_PROCESSOR__FLUSH_INTERVAL_MS", "200")
        .env("VEIL_KAFKA__TOPICS__PARTITIONS", "3")
        .env(
            "VEIL_PROCESSOR__METRICS_LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"));
    command
}

/// Every `message_id` in the events table under `root`, once per stored row.
pub fn stored_message_ids(root: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let mut stack = vec![root.join(veil_processor::tables::EVENTS)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('_') {
                    stack.push(path);
                }
                continue;
            }
            for batch in super::parquet::batches(&path) {
                let column = batch
                    .column_by_name("message_id")
                    .expect("message_id column");
                let column = column
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("strings");
                ids.extend((0..column.len()).map(|row| column.value(row).to_owned()));
            }
        }
    }
    ids
}

/// `GET /metrics` over a plain socket (empty when nothing listens).
pub fn scrape(port: u16) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ =
        stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// The value of one sample line, or -1 when it is missing.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(-1.0)
}
