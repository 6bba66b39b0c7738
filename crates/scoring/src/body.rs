//! A snapshot's body, as stored and cached: the API's `HealthScore`, compressed with lz4
//! against a fixed dictionary, a typical body.
//!
//! Bodies of one scorecard share most of their bytes: measure and group names, weights, the
//! scorecard's version. Against the dictionary, the benchmark's 1,028-byte bodies take about
//! 210 bytes (665 with lz4 alone), and a whole-tenant re-score writes that much less to the
//! database's log, its table and the cache.
//!
//! The format: a zero byte, the body's length (u32, little-endian), the lz4 block. A protobuf
//! message never starts with a zero byte (field 0 does not exist), so bodies stored before
//! compression, which are the message itself, read as before.

use prost::Message;
use rapport_proto::scoring::v1::HealthScore;

/// Marks a body compressed against [`DICTIONARY`].
const LZ4_WITH_DICTIONARY: u8 = 0;

/// The dictionary: the body of one of the benchmark's customers under the built-in scorecard
/// of November 2026. Stored bodies need it to be read, so it never changes: a better one
/// would take a new marker beside [`LZ4_WITH_DICTIONARY`].
static DICTIONARY: &[u8] = include_bytes!("body-dictionary.bin");

/// The largest body compressed: a score with every measure, group and override is a few KB.
/// A larger one is stored as the message itself, and a corrupt length read never allocates
/// more.
const MAX_BODY: usize = 1 << 20;

/// Why stored or cached bytes are not a body.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BodyError {
    #[error("the compressed body is cut short ({0} bytes)")]
    Truncated(usize),
    #[error("a body of {0} bytes is over the limit of {MAX_BODY}")]
    TooLarge(usize),
    #[error("the body decompressed to {got} bytes, not {expected}")]
    WrongLength { got: usize, expected: usize },
    #[error("lz4: {0}")]
    Lz4(String),
    #[error("protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// The stored and cached form of a score.
pub fn encode(health: &HealthScore) -> Vec<u8> {
    let raw = health.encode_to_vec();
    let Some(length) = u32::try_from(raw.len())
        .ok()
        .filter(|_| raw.len() <= MAX_BODY)
    else {
        return raw;
    };
    let mut out = Vec::with_capacity(5 + lz4_flex::block::get_maximum_output_size(raw.len()));
    out.push(LZ4_WITH_DICTIONARY);
    out.extend(length.to_le_bytes());
    out.extend(lz4_flex::block::compress_with_dict(&raw, DICTIONARY));
    out
}

/// The score stored or cached as `bytes`: compressed by [`encode`], or the message itself
/// (bodies stored before compression).
pub fn decode(bytes: &[u8]) -> Result<HealthScore, BodyError> {
    match bytes.split_first() {
        Some((&LZ4_WITH_DICTIONARY, rest)) => {
            let Some((length, block)) = rest.split_first_chunk::<4>() else {
                return Err(BodyError::Truncated(bytes.len()));
            };
            let length = u32::from_le_bytes(*length) as usize;
            if length > MAX_BODY {
                return Err(BodyError::TooLarge(length));
            }
            let raw = lz4_flex::block::decompress_with_dict(block, length, DICTIONARY)
                .map_err(|e| BodyError::Lz4(e.to_string()))?;
            // The length is a floor to lz4: a block that decompresses short is corrupt.
            if raw.len() != length {
                return Err(BodyError::WrongLength {
                    got: raw.len(),
                    expected: length,
                });
            }
            Ok(HealthScore::decode(raw.as_slice())?)
        }
        _ => Ok(HealthScore::decode(bytes)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rapport_proto::scoring::v1::{GroupScore, MeasureScore};

    fn score(customer: &str, value: f64) -> HealthScore {
        HealthScore {
            customer_id: customer.into(),
            score: value,
            measures: vec![MeasureScore {
                measure: "recency_days".into(),
                group: "loyalty".into(),
                value: Some(value),
                score: Some(60.0),
                weight: 0.2,
                contribution: 12.0,
                ..MeasureScore::default()
            }],
            groups: vec![GroupScore {
                group: "loyalty".into(),
                score: Some(60.0),
                weight: 0.3,
                contribution: 18.0,
            }],
            scorecard_version: "v3".into(),
            ..HealthScore::default()
        }
    }

    #[test]
    fn a_body_reads_back_as_the_score_it_was_made_of() {
        let h = score("c1", 41.5);
        let bytes = encode(&h);
        assert_eq!(bytes[0], LZ4_WITH_DICTIONARY);
        assert_eq!(decode(&bytes), Ok(h));
        assert_eq!(
            decode(&encode(&HealthScore::default())),
            Ok(HealthScore::default())
        );
    }

    #[test]
    fn a_body_stored_before_compression_reads_as_before() {
        let h = score("c2", 77.0);
        assert_eq!(decode(&h.encode_to_vec()), Ok(h));
        assert_eq!(decode(&[]), Ok(HealthScore::default()));
    }

    #[test]
    fn the_dictionary_is_a_body() {
        // What it is, checked: a stored score of the built-in scorecard's measures.
        let h = HealthScore::decode(DICTIONARY).expect("the dictionary decodes");
        assert!(h.measures.len() >= 10, "{h:?}");
        assert!(h.scorecard_version.starts_with("builtin-"), "{h:?}");
    }

    #[test]
    fn a_corrupt_length_is_refused_before_it_allocates() {
        let mut bytes = encode(&score("c3", 1.0));
        bytes[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes), Err(BodyError::TooLarge(u32::MAX as usize)));
        assert_eq!(decode(&[0, 1, 2]), Err(BodyError::Truncated(3)));
        let mut longer = encode(&score("c3", 1.0));
        let claimed = u32::from_le_bytes([longer[1], longer[2], longer[3], longer[4]]) + 9;
        longer[1..5].copy_from_slice(&claimed.to_le_bytes());
        assert!(
            matches!(
                decode(&longer),
                Err(BodyError::WrongLength { .. } | BodyError::Lz4(_))
            ),
            "{:?}",
            decode(&longer)
        );
    }

    #[test]
    fn a_body_too_large_to_compress_is_stored_as_the_message() {
        let mut h = score("c4", 2.0);
        h.scorecard_version = "v".repeat(MAX_BODY + 1);
        let bytes = encode(&h);
        assert_eq!(bytes, h.encode_to_vec());
        assert_eq!(decode(&bytes), Ok(h));
    }

    proptest! {
        /// Whatever the bytes (a corrupt row, a foreign cache value), decoding returns a
        /// score or an error, never a panic.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(
            bytes in prop::collection::vec(any::<u8>(), 0..300),
            compressed in any::<bool>(),
        ) {
            let mut bytes = bytes;
            if compressed && bytes.len() >= 5 {
                bytes[0] = LZ4_WITH_DICTIONARY;
                let claimed = (bytes.len() as u32 * 4).to_le_bytes();
                bytes[1..5].copy_from_slice(&claimed);
            }
            let _ = decode(&bytes);
        }

        #[test]
        fn scores_read_back(customer in "[a-z0-9]{1,20}", value in 0.0f64..100.0) {
            let h = score(&customer, value);
            prop_assert_eq!(decode(&encode(&h)), Ok(h));
        }
    }
}
