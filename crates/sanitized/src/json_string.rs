//! The one scan both JSON readers (the gateway's filter, the processor's canonical fast path)
//! spend most of their time in: where does a string end, or need more than copying?

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Offset in `bytes` of the first `"`, `\` or control character (below 0x20): the end of a
/// JSON string without escapes, or the place where it needs a closer look. `None` if none.
///
/// Sixteen bytes a step with SSE2 (x86-64's baseline, through `safe_arch`), then eight with
/// word arithmetic, then one at a time; the answer is the same on every path.
#[inline(always)]
pub fn special_offset(bytes: &[u8]) -> Option<usize> {
    let mut offset = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use safe_arch::{
            cmp_eq_mask_i8_m128i, load_unaligned_m128i, min_u8_m128i, move_mask_i8_m128i,
            set_splat_i8_m128i,
        };
        let quote = set_splat_i8_m128i(b'"' as i8);
        let backslash = set_splat_i8_m128i(b'\\' as i8);
        let last_control = set_splat_i8_m128i(0x1f);
        let mut blocks = bytes.chunks_exact(16);
        for block in &mut blocks {
            let Ok(block) = <&[u8; 16]>::try_from(block) else {
                break;
            };
            let chunk = load_unaligned_m128i(block);
            // min(byte, 0x1f) == byte exactly when byte <= 0x1f (unsigned).
            let control = cmp_eq_mask_i8_m128i(min_u8_m128i(chunk, last_control), chunk);
            let found = cmp_eq_mask_i8_m128i(chunk, quote)
                | cmp_eq_mask_i8_m128i(chunk, backslash)
                | control;
            let mask = move_mask_i8_m128i(found) as u32;
            if mask != 0 {
                return Some(offset + mask.trailing_zeros() as usize);
            }
            offset += 16;
        }
    }
    let rest = &bytes[offset..];
    let mut words = rest.chunks_exact(8);
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let chunk = u64::from_le_bytes(word);
        let equal = |byte: u8| {
            let probe = chunk ^ (ONES * u64::from(byte));
            probe.wrapping_sub(ONES) & !probe & HIGHS
        };
        let control = chunk.wrapping_sub(ONES * 0x20) & !chunk & HIGHS;
        let found = equal(b'"') | equal(b'\\') | control;
        if found != 0 {
            // The lowest flag is exact (borrows only run upwards from a real match).
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|byte| matches!(byte, b'"' | b'\\' | 0..=0x1f))
        .map(|at| offset + at)
}

#[cfg(test)]
mod tests {
    use super::special_offset;

    #[test]
    fn finds_the_first_quote_backslash_or_control_character_at_every_position() {
        let reference = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|byte| matches!(byte, b'"' | b'\\' | 0..=0x1f))
        };
        let specials = [b'"', b'\\', 0x00, 0x1f, b'\n'];
        // Bytes next to the specials' values, so a borrow or a near miss would show.
        let fillers = [
            b'a', b' ', 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0x9f, 0xc3, 0xff,
        ];
        // Past two SIMD blocks and a word, so every path and every hand-over is covered.
        for length in 0..56 {
            for filler in fillers {
                let mut bytes = vec![filler; length];
                assert_eq!(
                    special_offset(&bytes),
                    reference(&bytes),
                    "none in {length}"
                );
                for at in 0..length {
                    for special in specials {
                        bytes[at] = special;
                        assert_eq!(special_offset(&bytes), Some(at), "{special:#x} at {at}");
                        // A second special after the first does not change the answer.
                        if at + 1 < length {
                            bytes[length - 1] = b'"';
                            assert_eq!(special_offset(&bytes), reference(&bytes));
                            bytes[length - 1] = filler;
                        }
                        bytes[at] = filler;
                    }
                }
            }
        }
    }
}
