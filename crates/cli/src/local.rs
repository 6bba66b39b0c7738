//! The local platform file: `rapport up` writes where it listens, so the CLI run from the same
//! directory finds it with no flags.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Name of the file under the data directory.
pub const FILE: &str = "local.toml";

/// Addresses and key of a running local platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalPlatform {
    pub ingestion: String,
    pub scoring: String,
    pub segmentation: String,
    pub alerting: String,
    pub api_key: String,
    /// The console's address (absent in files of platforms from before it).
    #[serde(default)]
    pub console: Option<String>,
}

impl LocalPlatform {
    /// The file's path under `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE)
    }

    /// Reads the file, if a platform was started from here.
    pub fn load(data_dir: &Path) -> Option<LocalPlatform> {
        let text = std::fs::read_to_string(Self::path(data_dir)).ok()?;
        toml::from_str(&text).ok()
    }

    /// Writes the file.
    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        std::fs::write(Self::path(data_dir), toml::to_string(self)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let dir = std::env::temp_dir().join(format!("rapport-local-{}", std::process::id()));
        let p = LocalPlatform {
            ingestion: "127.0.0.1:1".into(),
            scoring: "127.0.0.1:2".into(),
            segmentation: "127.0.0.1:3".into(),
            alerting: "127.0.0.1:4".into(),
            api_key: "k".into(),
            console: Some("127.0.0.1:5".into()),
        };
        p.save(&dir).unwrap();
        assert_eq!(LocalPlatform::load(&dir), Some(p));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
