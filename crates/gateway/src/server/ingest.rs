//! The Segment Tracking API handler: authenticate, split, filter every message, publish the
//! sanitized ones with one audit record, and answer 200 only once Kafka acknowledged them all.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use veil_config::Tenant;
use veil_sanitized::MessageKind;

use super::body::{check_headers, gunzip, read_body};
use super::error::ApiError;
use super::metrics::{DropLabels, RegionLabels, RejectLabels};
use super::state::Gateway;
use crate::filter::{
    DropCounts, DropReason, MessageMeta, RejectReason, Rejection, TenantFilter, WorkerCache,
    format_timestamp, split_batch, without_byte_order_mark,
};
use crate::sink::RecordBatch;

thread_local! {
    /// Each worker thread keeps its own filter cache (pseudonyms, key orders): no locks on the
    /// hot path.
    static WORKER_CACHE: RefCell<WorkerCache> = RefCell::new(WorkerCache::default());
}

/// Rejections listed one by one in a 200 (`rejectedCount` counts them all).
pub(crate) const MAX_LISTED_REJECTIONS: usize = 100;

/// What an ingest route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/v1/track`, `/v1/t`, …: one message of this type (its `type` may be left out).
    Single(MessageKind),
    /// `/v1/batch`, `/v1/import`, `/v1/b`: `{"batch": [...]}`.
    Batch,
}

/// Policy decisions are not client errors: the request still succeeds.
fn is_policy_rejection(reason: RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::TypeNotAllowlisted
            | RejectReason::EventNotAllowlisted
            | RejectReason::EventRequiresEnhanced
    )
}

/// The write key from HTTP Basic auth (the user name; the password is ignored).
fn basic_auth_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    (!user.is_empty()).then(|| user.to_owned())
}

/// The `writeKey` a browser puts in a single message's body.
fn body_write_key(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct KeyOnly<'a> {
        #[serde(rename = "writeKey", borrow)]
        write_key: Option<Cow<'a, str>>,
    }
    let parsed: KeyOnly<'_> = serde_json::from_slice(body).ok()?;
    parsed.write_key.map(Cow::into_owned)
}

/// Puts `"type":"<kind>"` first in a message object that has none.
fn with_type(message: &[u8], kind: MessageKind) -> Option<Vec<u8>> {
    let start = message
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())?;
    if message[start] != b'{' {
        return None;
    }
    let rest = &message[start + 1..];
    let empty = rest
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| *byte == b'}');
    let mut typed = Vec::with_capacity(message.len() + 24);
    typed.extend_from_slice(b"{\"type\":\"");
    typed.extend_from_slice(kind.as_str().as_bytes());
    typed.extend_from_slice(if empty { b"\"" } else { b"\"," });
    typed.extend_from_slice(rest);
    Some(typed)
}

/// Everything filtering a request produced.
struct Filtered {
    records: RecordBatch,
    accepted: usize,
    rejections: Vec<(usize, Rejection)>,
    drops: DropCounts,
}

/// Filters one message, filling in what Segment would: the endpoint's type when `type` is left
/// out, and a message id when `messageId` is (derived from the message under the tenant's key,
/// so a client's retry of the same bytes gets the same id and is deduplicated).
fn filter_one(
    filter: &TenantFilter,
    endpoint: Endpoint,
    message: &[u8],
    meta: MessageMeta<'_>,
    cache: &mut WorkerCache,
    out: &mut Vec<u8>,
    drops: &mut DropCounts,
) -> Result<crate::filter::Accepted, Rejection> {
    let mut message = Cow::Borrowed(message);
    let mut fallback_id: Option<String> = None;
    let start = out.len();
    for _ in 0..3 {
        let meta = MessageMeta {
            fallback_message_id: fallback_id.as_deref(),
            ..meta
        };
        out.truncate(start);
        let rejection = match filter.filter(&message, &meta, cache, out, drops) {
            Ok(accepted) => {
                if let Endpoint::Single(kind) = endpoint
                    && accepted.kind != kind
                {
                    out.truncate(start);
                    return Err(Rejection {
                        reason: RejectReason::WrongType,
                        field: Some("type".to_owned()),
                        detail: Some(format!("does not match the endpoint /v1/{}", kind.as_str())),
                        event: None,
                    });
                }
                return Ok(accepted);
            }
            Err(rejection) => rejection,
        };
        match (rejection.reason, &rejection.field, endpoint) {
            (RejectReason::MissingType, _, Endpoint::Single(kind)) => {
                message = Cow::Owned(with_type(&message, kind).ok_or(rejection)?);
            }
            (RejectReason::InvalidMessageId, None, _) if fallback_id.is_none() => {
                let digest = filter.derived_message_id(&message);
                fallback_id = Some(digest);
            }
            _ => return Err(rejection),
        }
    }
    Err(Rejection {
        reason: RejectReason::MalformedJson,
        field: None,
        detail: None,
        event: None,
    })
}

fn filter_request(
    gateway: &Gateway,
    tenant: &Tenant,
    filter: &TenantFilter,
    endpoint: Endpoint,
    items: &[Cow<'_, [u8]>],
    sent_at: Option<&str>,
    received_at: &str,
) -> Filtered {
    let topic = gateway.sanitized_topic(tenant.region);
    let meta = MessageMeta {
        received_at,
        fallback_message_id: None,
        sent_at,
    };
    let mut records = RecordBatch::with_capacity(items.len() + 1, 1024);
    // A record that packs several of the request's messages is keyed by what they share.
    records.set_shared_key(tenant.id.as_bytes());
    let mut filtered = Filtered {
        records,
        accepted: 0,
        rejections: Vec::new(),
        drops: DropCounts::default(),
    };
    WORKER_CACHE.with_borrow_mut(|cache| {
        for (index, item) in items.iter().enumerate() {
            let buffer = filtered.records.buffer_mut();
            let payload_start = buffer.len();
            match filter_one(
                filter,
                endpoint,
                item,
                meta,
                cache,
                buffer,
                &mut filtered.drops,
            ) {
                Ok(accepted) => {
                    let payload_end = buffer.len();
                    buffer.extend_from_slice(tenant.id.as_bytes());
                    if let Some(routing) = accepted.routing_key {
                        buffer.push(b'/');
                        buffer.extend_from_slice(&routing);
                    }
                    let key_end = buffer.len();
                    filtered.records.push(
                        topic.clone(),
                        payload_end..key_end,
                        payload_start..payload_end,
                    );
                    filtered.accepted += 1;
                }
                Err(rejection) => {
                    debug_assert_eq!(buffer.len(), payload_start, "a rejection leaves nothing");
                    filtered.rejections.push((index, rejection));
                }
            }
        }
    });
    filtered
}

/// The compact audit record of a request's rejections and dropped fields: names and counts only.
fn audit_record(
    gateway: &Gateway,
    tenant: &Tenant,
    received_at: &str,
    messages: usize,
    filtered: &Filtered,
    dropped: &BTreeMap<(String, DropReason), u64>,
) -> Option<Vec<u8>> {
    if filtered.rejections.is_empty() && dropped.is_empty() {
        return None;
    }
    let mut rejected: BTreeMap<(&str, Option<&str>, Option<&str>), u64> = BTreeMap::new();
    for (_, rejection) in &filtered.rejections {
        *rejected
            .entry((
                rejection.reason.as_str(),
                rejection.field.as_deref(),
                rejection.event.as_deref(),
            ))
            .or_default() += 1;
    }
    let record = json!({
        "schema": 1,
        "tenant": tenant.id,
        "region": tenant.region.as_str(),
        "policy": gateway.policy.digest(),
        "receivedAt": received_at,
        "messages": messages,
        "accepted": filtered.accepted,
        "rejected": rejected.iter().map(|((reason, field, event), count)| json!({
            "reason": reason, "field": field, "event": event, "count": count,
        })).collect::<Vec<_>>(),
        "dropped": dropped.iter().map(|((field, reason), count)| json!({
            "field": field, "reason": reason.as_str(), "count": count,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&record).ok()
}

/// The 200's body: the first [`MAX_LISTED_REJECTIONS`] rejections in full and the count of all
/// of them, so a batch of junk cannot make the answer larger than the request.
fn answer(accepted: usize, rejections: &[(usize, Rejection)]) -> Value {
    json!({
        "success": true,
        "accepted": accepted,
        "rejected": rejections.iter().take(MAX_LISTED_REJECTIONS).map(|(index, rejection)| json!({
            "index": index,
            "reason": rejection.reason.as_str(),
            "field": rejection.field,
        })).collect::<Vec<_>>(),
        "rejectedCount": rejections.len(),
    })
}

/// Handles one ingest request end to end.
pub(crate) async fn ingest(
    gateway: Arc<Gateway>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    if gateway.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::ShuttingDown);
    }
    if gateway.backpressure() {
        return Err(ApiError::Unavailable {
            retry_after_seconds: 1,
        });
    }
    let gzip = check_headers(&headers)?;
    let raw = read_body(body, gateway.config.request_read_timeout()).await?;
    let inflated;
    let bytes: &[u8] = if gzip {
        inflated = gunzip(&raw)?;
        &inflated
    } else {
        &raw
    };
    let bytes = without_byte_order_mark(bytes);
    let now = OffsetDateTime::now_utc();
    let received_at = format_timestamp(now);

    let (items, sent_at, body_key): (Vec<Cow<'_, [u8]>>, Option<String>, Option<String>) =
        match endpoint {
            Endpoint::Batch => match split_batch(bytes) {
                Ok(Some(batch)) => (batch.items, batch.sent_at, batch.write_key),
                Ok(None) => {
                    return Err(ApiError::MalformedBody(
                        "expected an object with a `batch` array".to_owned(),
                    ));
                }
                Err(error) => return Err(ApiError::MalformedBody(error.to_string())),
            },
            Endpoint::Single(_) => {
                let key = basic_auth_key(&headers)
                    .is_none()
                    .then(|| body_write_key(bytes))
                    .flatten();
                (vec![Cow::Borrowed(bytes)], None, key)
            }
        };
    let write_key = basic_auth_key(&headers)
        .or(body_key)
        .ok_or(ApiError::Unauthorized)?;
    let tenant = gateway
        .write_keys
        .lookup(write_key.as_bytes())
        .ok_or(ApiError::Unauthorized)?
        .clone();
    gateway.admit(&write_key, items.len())?;
    let filter = gateway.filter_for(&tenant, now)?;

    let filtered = filter_request(
        &gateway,
        &tenant,
        &filter,
        endpoint,
        &items,
        sent_at.as_deref(),
        &received_at,
    );
    if let (Endpoint::Single(_), Some((_, rejection))) = (endpoint, filtered.rejections.first())
        && !is_policy_rejection(rejection.reason)
    {
        gateway
            .metrics
            .rejected
            .get_or_create(&RejectLabels {
                reason: rejection.reason.as_str(),
            })
            .inc();
        return Err(ApiError::InvalidMessage(rejection.clone()));
    }
    let dropped = filtered.drops.by_field(&gateway.policy);
    let audit = audit_record(
        &gateway,
        &tenant,
        &received_at,
        items.len(),
        &filtered,
        &dropped,
    );
    let response = answer(filtered.accepted, &filtered.rejections);
    let Filtered {
        mut records,
        accepted,
        rejections,
        ..
    } = filtered;
    if let Some(audit) = audit {
        records.push_owned(
            gateway.rejections_topic.clone(),
            tenant.id.as_bytes(),
            &audit,
        );
    }

    if !records.is_empty() {
        let metrics = &gateway.metrics;
        metrics.in_flight.inc();
        let started = Instant::now();
        let published = gateway.publisher.publish(records).await;
        metrics.in_flight.dec();
        metrics
            .produce_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = published {
            tracing::warn!(tenant = %tenant.id, messages = items.len(), %error, "messages not acknowledged; answering 503");
            return Err(ApiError::Unavailable {
                retry_after_seconds: u64::from(gateway.config.retry_after_seconds),
            });
        }
    }
    let metrics = &gateway.metrics;
    metrics
        .accepted
        .get_or_create(&RegionLabels {
            region: tenant.region.as_str(),
        })
        .inc_by(accepted as u64);
    for (_, rejection) in &rejections {
        metrics
            .rejected
            .get_or_create(&RejectLabels {
                reason: rejection.reason.as_str(),
            })
            .inc();
    }
    for ((field, reason), count) in &dropped {
        metrics
            .dropped
            .get_or_create(&DropLabels {
                field: gateway.field_label(field),
                reason: reason.as_str(),
            })
            .inc_by(*count);
    }
    Ok(Json(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_takes_the_user_name_as_write_key() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("wk_live_1:");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().expect("header"),
        );
        assert_eq!(basic_auth_key(&headers).as_deref(), Some("wk_live_1"));
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().expect("header"));
        assert_eq!(basic_auth_key(&headers), None);
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().expect("header"));
        assert_eq!(basic_auth_key(&headers), None);
    }

    #[test]
    fn a_missing_type_is_put_first() {
        assert_eq!(
            with_type(br#" {"event":"x"}"#, MessageKind::Track).as_deref(),
            Some(&br#"{"type":"track","event":"x"}"#[..])
        );
        assert_eq!(
            with_type(b"{ }", MessageKind::Page).as_deref(),
            Some(&br#"{"type":"page" }"#[..])
        );
        assert_eq!(with_type(b"[1]", MessageKind::Page), None);
    }
}
