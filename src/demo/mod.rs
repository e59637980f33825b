//! `veil up --demo`: a month of synthetic client traffic from several tenants, sent through the
//! gateway's HTTP API exactly as an SDK would, so every dashboard has data within a minute.

pub(crate) mod traffic;
pub(crate) mod vocabulary;

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use time::OffsetDateTime;
pub(crate) use traffic::TenantProfile;

/// Messages per `/v1/batch` request, as the SDKs send them.
const BATCH: usize = 100;

/// The demo tenants' habits: tenant id and write key from `tenants.yaml`, the rest invented so
/// dashboards differ (a small tenant shows suppression, one over its seats shows over-deployment).
pub(crate) fn default_profiles(tenants: &[(String, String)]) -> Vec<TenantProfile> {
    // (people, daily activity, messages a day): big and busy, mid, small, over-deployed, ...
    const HABITS: [(usize, f64, usize); 8] = [
        (70, 0.75, 6),
        (45, 0.6, 5),
        (110, 0.5, 4),
        (32, 0.8, 5),
        (4, 0.9, 6),
        (25, 0.3, 3),
        (60, 0.45, 4),
        (15, 0.7, 5),
    ];
    tenants
        .iter()
        .zip(HABITS.iter().cycle())
        .map(
            |((tenant, write_key), (users, daily_activity, messages_per_day))| TenantProfile {
                tenant: tenant.clone(),
                write_key: write_key.clone(),
                users: *users,
                daily_activity: *daily_activity,
                messages_per_day: *messages_per_day,
            },
        )
        .collect()
}

/// What a demo run sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DemoSummary {
    /// Messages sent and acknowledged (200).
    pub(crate) messages: usize,
    /// Requests that needed a retry (429 or 503).
    pub(crate) retries: usize,
}

/// Sends `days` of history for every profile to the gateway at `ingest_url`, day by day (so the
/// processor writes each day's partition in few files), printing a progress line to stderr.
pub(crate) async fn send(
    ingest_url: &str,
    profiles: &[TenantProfile],
    days: i64,
    seed: u64,
) -> anyhow::Result<DemoSummary> {
    let now = OffsetDateTime::now_utc();
    let histories: Vec<Vec<Vec<serde_json::Value>>> = profiles
        .iter()
        .enumerate()
        .map(|(index, profile)| traffic::history(profile, seed + index as u64, days, now))
        .collect();
    let total: usize = histories.iter().flatten().map(Vec::len).sum();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/v1/batch", ingest_url.trim_end_matches('/'));
    let mut summary = DemoSummary::default();
    let day_count = usize::try_from(days).unwrap_or(0);
    for day in 0..day_count {
        let mut requests = Vec::new();
        for (profile, history) in profiles.iter().zip(&histories) {
            for chunk in history[day].chunks(BATCH) {
                let body = json!({"batch": chunk, "sentAt": now_rfc3339()}).to_string();
                requests.push((profile.write_key.as_str(), body, chunk.len()));
            }
        }
        // A few requests in flight, like several client machines at once.
        for wave in requests.chunks(4) {
            let mut in_flight = tokio::task::JoinSet::new();
            for (write_key, body, count) in wave {
                let (client, url) = (client.clone(), url.clone());
                let (write_key, body, count) = (write_key.to_string(), body.clone(), *count);
                in_flight.spawn(async move {
                    post_until_accepted(&client, &url, &write_key, body, count).await
                });
            }
            while let Some(result) = in_flight.join_next().await {
                let (sent, retries) = result.context("a demo sender stopped")??;
                summary.messages += sent;
                summary.retries += retries;
            }
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\rdemo: day {:>2}/{day_count} · {:>7}/{total} messages accepted",
            day + 1,
            summary.messages
        );
        let _ = stderr.flush();
    }
    eprintln!();
    Ok(summary)
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Posts one batch, retrying on 429 and 503 as the SDKs do; returns (messages, retries).
async fn post_until_accepted(
    client: &reqwest::Client,
    url: &str,
    write_key: &str,
    body: String,
    count: usize,
) -> anyhow::Result<(usize, usize)> {
    let mut retries = 0;
    loop {
        let response = client
            .post(url)
            .basic_auth(write_key, Some(""))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .context("the gateway did not answer")?;
        let status = response.status();
        if status.is_success() {
            return Ok((count, retries));
        }
        if (status.as_u16() == 429 || status.as_u16() == 503) && retries < 20 {
            retries += 1;
            tokio::time::sleep(Duration::from_millis(250 * retries as u64)).await;
            continue;
        }
        anyhow::bail!("the gateway answered {status} to a demo batch");
    }
}
