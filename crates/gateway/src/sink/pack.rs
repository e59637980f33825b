//! Packing: a request's messages bound for one partition travel as one Kafka record, one message
//! a line. A consumer's cost is mostly per record (librdkafka builds an event and a message
//! object for each), so the processor reads a 100-message batch as a few records, not 100.
//!
//! The partition is the one librdkafka's default partitioner (`consistent_random`) gives each
//! message's own key, CRC-32 of the key modulo the partition count, so a user's messages stay in
//! one partition, in order, packed or not. Pure: no I/O, the partition counts are handed in.

use std::borrow::Cow;

use super::RecordBatch;

/// The gateway's packed records stay under this many payload bytes by default (librdkafka's
/// `message.max.bytes` is 1,000,000); a group that would pass it continues in another record.
pub const MAX_PACKED_BYTES: usize = 256 * 1024;

/// One Kafka record as the publisher sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRecord<'a> {
    /// Destination topic.
    pub topic: &'a str,
    /// The message's own key, or the batch's shared key when the record packs several.
    pub key: &'a [u8],
    /// The partition, where the topic's partition count is known; else librdkafka's
    /// partitioner places the record by its key.
    pub partition: Option<i32>,
    /// One message, or several, one a line.
    pub payload: Cow<'a, [u8]>,
    /// How many messages the record carries.
    pub messages: usize,
}

/// The partition librdkafka's `consistent_random` partitioner picks for `key`.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    let Ok(count) = u32::try_from(partitions) else {
        return 0;
    };
    if count == 0 {
        return 0;
    }
    // `count` fits in i32, so the remainder does too.
    i32::try_from(crc32fast::hash(key) % count).unwrap_or(0)
}

/// One partition's messages of a batch, in order: (topic, partition, (key, payload) pairs).
type PartitionGroup<'b> = (&'b str, i32, Vec<(&'b [u8], &'b [u8])>);

impl RecordBatch {
    /// The batch as the records to send: messages grouped by topic and partition in their
    /// original order, each group packed into records of at most `max_bytes` (a single message
    /// is never split; 0 packs nothing). `partitions` gives a topic's partition count, if known;
    /// a topic without one gets a record per message, placed by librdkafka by its key.
    pub fn packed(
        &self,
        max_bytes: usize,
        partitions: impl Fn(&str) -> Option<i32>,
    ) -> Vec<PackedRecord<'_>> {
        // Messages grouped by (topic, partition), each group in the batch's order; a batch
        // spans few partitions, so the groups are found by a linear search.
        let mut groups: Vec<PartitionGroup<'_>> = Vec::new();
        let mut records = Vec::new();
        for (topic, key, payload) in self.iter() {
            let Some(count) = partitions(topic) else {
                records.push(single(topic, key, None, payload));
                continue;
            };
            let partition = partition_for(key, count);
            match groups.iter_mut().find(|(group_topic, group_partition, _)| {
                *group_partition == partition && *group_topic == topic
            }) {
                Some((_, _, members)) => members.push((key, payload)),
                None => groups.push((topic, partition, vec![(key, payload)])),
            }
        }
        for (topic, partition, members) in groups {
            let mut rest = members.as_slice();
            while let Some(&(key, payload)) = rest.first() {
                // As many as fit, in order; a single message is never split.
                let mut bytes = payload.len();
                let mut count = 1;
                while let Some(&(_, next)) = rest.get(count) {
                    if bytes + 1 + next.len() > max_bytes {
                        break;
                    }
                    bytes += 1 + next.len();
                    count += 1;
                }
                let (packed, after) = rest.split_at(count);
                rest = after;
                if count == 1 {
                    records.push(single(topic, key, Some(partition), payload));
                    continue;
                }
                let mut joined = Vec::with_capacity(bytes);
                for (at, (_, member)) in packed.iter().enumerate() {
                    if at > 0 {
                        joined.push(veil_sanitized::MESSAGE_SEPARATOR);
                    }
                    joined.extend_from_slice(member);
                }
                debug_assert_eq!(joined.len(), bytes);
                records.push(PackedRecord {
                    topic,
                    key: &self.shared_key,
                    partition: Some(partition),
                    payload: Cow::Owned(joined),
                    messages: count,
                });
            }
        }
        records
    }
}

fn single<'a>(
    topic: &'a str,
    key: &'a [u8],
    partition: Option<i32>,
    payload: &'a [u8],
) -> PackedRecord<'a> {
    PackedRecord {
        topic,
        key,
        partition,
        payload: Cow::Borrowed(payload),
        messages: 1,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn batch(messages: &[(&str, &str, &str)]) -> RecordBatch {
        let mut batch = RecordBatch::default();
        for (topic, key, payload) in messages {
            batch.push_owned(Arc::from(*topic), key.as_bytes(), payload.as_bytes());
        }
        batch
    }

    #[test]
    fn partitions_match_librdkafkas_consistent_partitioner() {
        // CRC-32 (IEEE, zlib's) of the key modulo the count; the standard check value first.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        let crc = crc32fast::hash(b"t-1000/abc");
        assert_eq!(partition_for(b"t-1000/abc", 6), (crc % 6) as i32);
        assert_eq!(partition_for(b"anything", 1), 0);
        for key in [b"a".as_slice(), b"t-1000/xyz", b""] {
            assert!((0..7).contains(&partition_for(key, 7)));
        }
    }

    #[test]
    fn messages_for_one_partition_share_a_record_in_order() {
        let messages: Vec<(String, String)> = (0..40)
            .map(|user| (format!("t-1/u{user}"), format!("{{\"n\":{user}}}")))
            .collect();
        let listed: Vec<(&str, &str, &str)> = messages
            .iter()
            .map(|(key, payload)| ("events", key.as_str(), payload.as_str()))
            .collect();
        let mut batch = batch(&listed);
        batch.set_shared_key(b"t-1");
        let records = batch.packed(MAX_PACKED_BYTES, |_| Some(3));
        assert!(records.len() <= 3, "{records:?}");
        let mut seen = Vec::new();
        for record in &records {
            let partition = record.partition.expect("known count");
            let lines: Vec<&[u8]> = veil_sanitized::record_messages(&record.payload).collect();
            assert_eq!(lines.len(), record.messages);
            if record.messages > 1 {
                assert_eq!(record.key, b"t-1");
            }
            let mut last = None;
            for line in lines {
                let index = listed
                    .iter()
                    .position(|(_, _, payload)| payload.as_bytes() == line)
                    .expect("a message of the batch");
                assert_eq!(partition_for(listed[index].1.as_bytes(), 3), partition);
                assert!(last < Some(index), "order within the partition is kept");
                last = Some(index);
                seen.push(index);
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..40).collect::<Vec<_>>(),
            "each message exactly once"
        );
    }

    #[test]
    fn unknown_partition_counts_and_lone_messages_keep_their_own_key() {
        let mut batch = batch(&[
            ("events", "t-1/a", "{\"a\":1}"),
            ("events", "t-1/b", "{\"b\":2}"),
            ("audit", "t-1", "{\"audit\":1}"),
        ]);
        batch.set_shared_key(b"t-1");
        let records = batch.packed(MAX_PACKED_BYTES, |topic| (topic == "audit").then_some(4));
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key, b"t-1/a");
        assert_eq!(records[0].partition, None);
        assert_eq!(records[1].key, b"t-1/b");
        assert_eq!(records[2].topic, "audit");
        assert_eq!(records[2].partition, Some(partition_for(b"t-1", 4)));
        assert!(matches!(
            records[2].payload,
            Cow::Borrowed(b"{\"audit\":1}")
        ));
    }

    #[test]
    fn a_full_record_continues_in_the_next() {
        let big = "x".repeat(MAX_PACKED_BYTES / 2);
        let batch = batch(&[
            ("events", "k", big.as_str()),
            ("events", "k", big.as_str()),
            ("events", "k", "{}"),
        ]);
        let records = batch.packed(MAX_PACKED_BYTES, |_| Some(1));
        let sizes: Vec<usize> = records.iter().map(|record| record.messages).collect();
        assert_eq!(
            sizes,
            vec![1, 2],
            "the second big message does not fit with the first"
        );
        assert!(
            records
                .iter()
                .all(|record| record.payload.len() <= MAX_PACKED_BYTES)
        );

        // No packing: every message alone, still in its key's partition.
        let records = batch.packed(0, |_| Some(4));
        assert_eq!(records.len(), 3);
        assert!(
            records
                .iter()
                .all(|record| record.messages == 1 && record.key == b"k")
        );
        assert!(
            records
                .iter()
                .all(|record| record.partition == Some(partition_for(b"k", 4)))
        );
    }
}
