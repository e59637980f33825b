//! `veil filter`: the dry run of the gateway's privacy core over NDJSON on stdin.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use time::OffsetDateTime;
use veil_gateway::allowlist::Allowlist;
use veil_gateway::filter::{
    FilterStats, MessageMeta, RejectReason, Rejection, TenantFilter, WorkerCache, format_timestamp,
    split_batch, without_byte_order_mark,
};
use veil_gateway::pseudonym::{KeyStore, is_valid_tenant};
use veil_sanitized::Tier;

/// Longest line read: Segment's 500 KB request limit, rounded up.
const MAX_LINE_BYTES: usize = 512 * 1024;

#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// The allowlist to enforce.
    #[arg(long, default_value = "allowlist.yaml")]
    allowlist: PathBuf,
    /// Opaque id of the tenant the messages come from (never a company name).
    #[arg(long)]
    tenant: String,
    /// The tenant's collection tier.
    #[arg(long, default_value = "baseline")]
    tier: Tier,
    /// Directory of per-tenant keys (created on first use).
    #[arg(long, default_value_os_t = super::default_keystore())]
    keystore: PathBuf,
}

/// Reads one line of at most `max` bytes into `line`; longer lines are consumed and reported.
fn read_bounded_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    line.clear();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(read_any.then_some(too_long));
        }
        read_any = true;
        let (chunk, done) = match memchr_newline(available) {
            Some(at) => (&available[..at], at + 1),
            None => (available, available.len()),
        };
        if !too_long && line.len() + chunk.len() <= max {
            line.extend_from_slice(chunk);
        } else {
            too_long = true;
            line.clear();
        }
        let finished = done > chunk.len();
        input.consume(done);
        if finished {
            return Ok(Some(too_long));
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|byte| *byte == b'\n')
}

fn report(position: &str, rejection: &Rejection, stats: &mut FilterStats) {
    eprintln!("{position}: rejected {rejection}");
    stats.reject(rejection.reason);
}

pub(crate) fn run(args: FilterArgs) -> anyhow::Result<ExitCode> {
    if !is_valid_tenant(&args.tenant) {
        anyhow::bail!("--tenant must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_` or `-`");
    }
    let allowlist = Allowlist::load(&args.allowlist)
        .with_context(|| format!("{} is refused", args.allowlist.display()))?;
    let policy = Arc::new(allowlist.compile());
    let keys = KeyStore::open(&args.keystore)?;
    let key = keys.current(&args.tenant, args.tier, OffsetDateTime::now_utc())?;
    let filter = TenantFilter::new(policy.clone(), &args.tenant, args.tier, key);

    let mut input = io::BufReader::with_capacity(1 << 20, io::stdin().lock());
    let mut output = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let mut stats = FilterStats::default();
    let mut line = Vec::new();
    let mut sanitized = Vec::with_capacity(4096);
    let mut cache = WorkerCache::default();
    let mut line_number = 0u64;
    while let Some(too_long) = read_bounded_line(&mut input, &mut line, MAX_LINE_BYTES)? {
        line_number += 1;
        if too_long {
            stats.messages_in += 1;
            report(
                &format!("line {line_number}"),
                &Rejection {
                    reason: RejectReason::TooLarge,
                    field: None,
                    detail: None,
                    event: None,
                },
                &mut stats,
            );
            continue;
        }
        if line_number == 1 {
            // A file saved with a byte order mark.
            let mark = line.len() - without_byte_order_mark(&line).len();
            line.drain(..mark);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let received_at = format_timestamp(OffsetDateTime::now_utc());
        let mut sent_at = None;
        // Each item with its position in a batch (`None`: the line is one message); the label a
        // rejection names is only written for rejected messages.
        let items: Vec<(Option<usize>, std::borrow::Cow<'_, [u8]>)> = match split_batch(&line) {
            Ok(None) => vec![(None, std::borrow::Cow::Borrowed(&line[..]))],
            Ok(Some(batch)) => {
                sent_at = batch.sent_at;
                batch
                    .items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| (Some(index + 1), item))
                    .collect()
            }
            Err(error) => {
                stats.messages_in += 1;
                eprintln!("line {line_number}: rejected {error}");
                stats.reject(RejectReason::MalformedJson);
                continue;
            }
        };
        for (item, message) in items {
            stats.messages_in += 1;
            let meta = MessageMeta {
                received_at: &received_at,
                fallback_message_id: None,
                sent_at: sent_at.as_deref(),
            };
            sanitized.clear();
            let mut result = filter.filter(
                &message,
                &meta,
                &mut cache,
                &mut sanitized,
                &mut stats.dropped,
            );
            // As the gateway does: a message without `messageId` gets one derived from its bytes
            // under the tenant's key, so the same message filtered twice gets the same id.
            if let Err(rejection) = &result
                && rejection.reason == RejectReason::InvalidMessageId
                && rejection.field.is_none()
            {
                let derived = filter.derived_message_id(&message);
                let meta = MessageMeta {
                    fallback_message_id: Some(&derived),
                    ..meta
                };
                result = filter.filter(
                    &message,
                    &meta,
                    &mut cache,
                    &mut sanitized,
                    &mut stats.dropped,
                );
            }
            match result {
                Ok(_) => {
                    sanitized.push(b'\n');
                    output.write_all(&sanitized)?;
                    stats.messages_out += 1;
                }
                Err(rejection) => {
                    let position = match item {
                        None => format!("line {line_number}"),
                        Some(index) => format!("line {line_number} item {index}"),
                    };
                    report(&position, &rejection, &mut stats);
                }
            }
        }
    }
    output.flush()?;
    let (cached, computed) = cache.pseudonyms.hits_and_misses();
    eprint!(
        "veil filter: tenant {} ({}), policy {}, key epoch {}\n{}pseudonyms: {computed} computed, {cached} from the cache\n",
        args.tenant,
        args.tier.as_str(),
        policy.digest(),
        filter.key_epoch(),
        stats.summary(&policy)
    );
    Ok(ExitCode::SUCCESS)
}
