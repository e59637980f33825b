//! Message ids for clients that send none (Segment generates one as well).

/// A fresh random message id: `veil-` and 32 hex digits (128 random bits).
pub fn new_message_id() -> String {
    let mut random = [0u8; 16];
    // The OS random source failing is not recoverable in any useful way; ids then stay unique
    // per process through the time-based fallback below.
    if getrandom::fill(&mut random).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        random = nanos.to_le_bytes();
    }
    let mut id = String::with_capacity(37);
    id.push_str("veil-");
    for byte in random {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}
