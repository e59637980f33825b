//! The processor's Prometheus metrics, typed (each metric a field, each label set a struct), and
//! a minimal `/metrics` HTTP endpoint (std only: one short-lived connection at a time).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-table counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TableLabels {
    /// The table ([`crate::tables`]).
    pub table: &'static str,
}

/// Labels of per-partition gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PartitionLabels {
    /// The Kafka topic.
    pub topic: String,
    /// The Kafka partition.
    pub partition: i32,
}

/// Every metric the processor exports on `/metrics` (`veil_processor_*`).
#[derive(Debug)]
pub struct ProcessorStats {
    registry: Registry,
    /// Rows committed, by table.
    pub rows_written: Family<TableLabels, Counter>,
    /// Parquet files committed, by table.
    pub files_written: Family<TableLabels, Counter>,
    /// Records read from Kafka (or stdin lines), before deduplication: how far the input is drained.
    pub records_read: Counter,
    /// Messages read: a record holds one or more, one a line (the gateway packs a request's
    /// messages for one partition into one record), before deduplication.
    pub messages_read: Counter,
    /// Messages dropped as duplicates of a stored message.
    pub duplicates: Counter,
    /// Messages sent to the dead-letter topic (a record's bad lines go one by one).
    pub dead_letters: Counter,
    /// Compactions done, by table.
    pub compactions: Family<TableLabels, Counter>,
    /// Files merged away by compaction, by table.
    pub compacted_files: Family<TableLabels, Counter>,
    /// Time to write and commit one partition's flush.
    pub flush_seconds: Histogram,
    /// High watermark minus the next offset to read, per assigned partition.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Partitions the group gave this processor: 0 for long while others lag means it idles.
    pub assigned_partitions: Gauge,
    /// Assigned partitions paused until another processor lets go of them (one that stalled
    /// past its group session): above 0 for long means that processor is frozen.
    pub waiting_partitions: Gauge,
}

impl Default for ProcessorStats {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("veil_processor");
        let stats = ProcessorStats {
            rows_written: Family::default(),
            files_written: Family::default(),
            records_read: Counter::default(),
            messages_read: Counter::default(),
            duplicates: Counter::default(),
            dead_letters: Counter::default(),
            compactions: Family::default(),
            compacted_files: Family::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            consumer_lag: Family::default(),
            assigned_partitions: Gauge::default(),
            waiting_partitions: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "rows_written",
            "Rows committed to Parquet, by table",
            stats.rows_written.clone(),
        );
        registry.register(
            "files_written",
            "Parquet files committed, by table",
            stats.files_written.clone(),
        );
        registry.register(
            "records_read",
            "Records read from the topics, before deduplication",
            stats.records_read.clone(),
        );
        registry.register(
            "messages_read",
            "Messages read from the records (one or more a record), before deduplication",
            stats.messages_read.clone(),
        );
        registry.register(
            "duplicates",
            "Messages dropped as duplicates within the dedup window",
            stats.duplicates.clone(),
        );
        registry.register(
            "dead_letters",
            "Messages sent to the dead-letter topic",
            stats.dead_letters.clone(),
        );
        registry.register(
            "compactions",
            "Compactions of a partition's small files, by table",
            stats.compactions.clone(),
        );
        registry.register(
            "compacted_files",
            "Files merged away by compaction, by table",
            stats.compacted_files.clone(),
        );
        registry.register(
            "flush_latency_seconds",
            "Time to write, fsync and commit one partition's flush",
            stats.flush_seconds.clone(),
        );
        registry.register(
            "consumer_lag",
            "High watermark minus the next offset to read, per partition",
            stats.consumer_lag.clone(),
        );
        registry.register(
            "assigned_partitions",
            "Partitions the consumer group assigned to this processor",
            stats.assigned_partitions.clone(),
        );
        registry.register(
            "waiting_partitions",
            "Assigned partitions waiting for their previous owner to let go of them",
            stats.waiting_partitions.clone(),
        );
        // Every table's counters exist from the start (a scrape shows 0, not nothing).
        for table in crate::tables::ALL {
            let labels = TableLabels { table };
            for family in [
                &stats.rows_written,
                &stats.files_written,
                &stats.compactions,
                &stats.compacted_files,
            ] {
                let _ = family.get_or_create(&labels);
            }
        }
        ProcessorStats { registry, ..stats }
    }
}

impl ProcessorStats {
    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Rows committed to `table` so far.
    pub fn rows(&self, table: &'static str) -> u64 {
        self.rows_written
            .get_or_create(&TableLabels { table })
            .get()
    }
}

fn answer(mut stream: TcpStream, stats: &ProcessorStats) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = [0_u8; 1024];
    let read = stream.read(&mut request)?;
    let head = &request[..read];
    let (status, body) = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?")
    {
        ("200 OK", stats.render())
    } else {
        ("404 Not Found", String::new())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `GET /metrics` on `listen` from a background thread; returns the bound address.
pub fn serve(listen: &str, stats: Arc<ProcessorStats>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)?;
    let address = listener.local_addr()?;
    std::thread::Builder::new()
        .name("processor-metrics".to_owned())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(error) = answer(stream, &stats) {
                    tracing::debug!(%error, "metrics request failed");
                }
            }
        })?;
    Ok(address)
}
