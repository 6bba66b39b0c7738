//! Versions of built-in configuration (scorecards, alert rules): a digest of the text, so a
//! changed file is a new version and an unchanged one keeps its version across restarts.

use sha2::{Digest, Sha256};

/// `builtin-` and the first 4 bytes of the text's SHA-256, in hex.
pub fn builtin_version(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("builtin-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_text_is_a_new_version() {
        assert_eq!(builtin_version("a"), builtin_version("a"));
        assert_ne!(builtin_version("a"), builtin_version("b"));
        // SHA-256("a") starts with ca978112.
        assert_eq!(builtin_version("a"), "builtin-ca978112");
    }
}
