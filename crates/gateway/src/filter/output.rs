//! Short copies into the output with fixed-size moves: a sanitized message is some thirty
//! pieces of a few to thirty bytes, and a `memcpy` call per piece (with its size dispatch) cost
//! more than the bytes. Each piece is copied as a whole padded block, then the output is cut
//! back to the piece's length.

use crate::allowlist::{LeafId, Policy};

/// Bytes moved per short copy.
pub(crate) const BLOCK: usize = 32;

/// A leaf's `,"path":` prepared once per filter, padded to a block when it fits one.
#[derive(Debug, Clone)]
struct Piece {
    padded: [u8; BLOCK],
    /// The piece's length; longer than [`BLOCK`] means `padded` is unused.
    length: usize,
    whole: Box<[u8]>,
}

/// `,"path":` for every leaf of a policy.
#[derive(Debug, Clone)]
pub(crate) struct LeafPieces {
    pieces: Vec<Piece>,
}

impl LeafPieces {
    /// Prepares the pieces of every leaf of `policy`.
    pub(crate) fn new(policy: &Policy) -> LeafPieces {
        let mut pieces = Vec::new();
        for (leaf, _, _) in policy.leaves() {
            let index = leaf as usize;
            let mut whole = vec![b','];
            whole.extend_from_slice(policy.leaf_json_key(leaf));
            let mut padded = [0u8; BLOCK];
            if let Some(head) = padded.get_mut(..whole.len()) {
                head.copy_from_slice(&whole);
            }
            if pieces.len() <= index {
                pieces.resize(
                    index + 1,
                    Piece {
                        padded: [0; BLOCK],
                        length: 0,
                        whole: Box::default(),
                    },
                );
            }
            pieces[index] = Piece {
                padded,
                length: whole.len(),
                whole: whole.into_boxed_slice(),
            };
        }
        LeafPieces { pieces }
    }

    /// Appends `,"path":` of `leaf`.
    #[inline(always)]
    pub(crate) fn push(&self, out: &mut Vec<u8>, leaf: LeafId) {
        let Some(piece) = self.pieces.get(leaf as usize) else {
            debug_assert!(false, "every leaf has a piece");
            return;
        };
        if piece.length <= BLOCK {
            push_block(out, &piece.padded, piece.length);
        } else {
            out.extend_from_slice(&piece.whole);
        }
    }
}

/// Appends the first `length` bytes of `block` (at most [`BLOCK`]) with one fixed-size move.
#[inline(always)]
pub(crate) fn push_block(out: &mut Vec<u8>, block: &[u8; BLOCK], length: usize) {
    debug_assert!(length <= BLOCK);
    let end = out.len() + length;
    out.extend_from_slice(block);
    out.truncate(end);
}

/// Appends `"text"` for a string the walk borrowed from `input`, where the scanner found it
/// between two quotes, copying those bytes of the input with one fixed-size move. False (and
/// nothing written) when the text is long, ends near the end of the input, or is not where a
/// borrowed string would be; the caller then writes it another way.
#[inline(always)]
pub(crate) fn push_quoted_from_input(out: &mut Vec<u8>, input: &[u8], text: &str) -> bool {
    let length = text.len() + 2;
    let offset = (text.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
    let Some(start) = offset.checked_sub(1) else {
        return false;
    };
    let Some(window) = start
        .checked_add(BLOCK)
        .and_then(|end| input.get(start..end))
    else {
        return false;
    };
    // The window starts one byte before `text` in the same buffer, so it holds exactly `text`
    // between its first byte and byte `length - 1`, which must be the quotes around it.
    if length > BLOCK
        || window.as_ptr().wrapping_add(1) != text.as_ptr()
        || window.first() != Some(&b'"')
        || window.get(length - 1) != Some(&b'"')
    {
        return false;
    }
    let Ok(block) = <&[u8; BLOCK]>::try_from(window) else {
        return false;
    };
    push_block(out, block, length);
    debug_assert_eq!(&out[out.len() - length + 1..out.len() - 1], text.as_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_strings_are_copied_with_their_quotes_or_refused() {
        let input = format!(
            r#"{{"a":"short","b":"{}","c":"x\"y","d":"end"}}"#,
            "z".repeat(BLOCK)
        );
        let bytes = input.as_bytes();
        let at = |needle: &str| {
            let start = input.find(needle).expect("present");
            &input[start..start + needle.len()]
        };
        let mut out = b"[".to_vec();
        assert!(push_quoted_from_input(&mut out, bytes, at("short")));
        assert_eq!(out, b"[\"short\"");
        let long = "z".repeat(BLOCK);
        assert!(
            !push_quoted_from_input(&mut out, bytes, at(&long)),
            "too long"
        );
        assert!(
            !push_quoted_from_input(&mut out, bytes, at("x")),
            "no quote after"
        );
        assert!(
            !push_quoted_from_input(&mut out, bytes, at("end")),
            "near the end"
        );
        assert!(
            !push_quoted_from_input(&mut out, bytes, "short"),
            "not in the input"
        );
        assert_eq!(out, b"[\"short\"", "nothing written when refused");
        for length in 0..=BLOCK {
            let mut block = [b'-'; BLOCK];
            block[..length].fill(b'k');
            let mut out = b"ab".to_vec();
            push_block(&mut out, &block, length);
            assert_eq!(out.len(), 2 + length);
            assert!(out[2..].iter().all(|byte| *byte == b'k'));
        }
    }
}
