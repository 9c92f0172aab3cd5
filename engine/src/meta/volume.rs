//! The volume record: written once by `format`, read by every mount.

use serde::{Deserialize, Serialize};

/// The newest on-etcd format this build understands. A client refuses a volume whose
/// `format_version` is newer, so an old client never misreads a newer layout.
pub const FORMAT_VERSION: u32 = 1;

/// Features this build understands; a volume listing any other is refused.
pub const KNOWN_FEATURES: &[&str] = &[];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeRecord {
    pub name: String,
    pub uuid: String,
    pub format_version: u32,
    pub block_size: u64,
    pub chunk_size: u64,
    /// Swift container holding the blocks.
    pub container: String,
    #[serde(default)]
    pub features: Vec<String>,
    /// Seconds since the epoch.
    pub created: i64,
}

impl VolumeRecord {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn decode(b: &[u8]) -> Result<Self, super::MetaError> {
        let rec: VolumeRecord = serde_json::from_slice(b)
            .map_err(|e| super::MetaError::Corrupt(format!("volume record: {e}")))?;
        rec.check_supported()?;
        Ok(rec)
    }

    /// Refuses formats and features this build does not know.
    pub fn check_supported(&self) -> Result<(), super::MetaError> {
        if self.format_version > FORMAT_VERSION {
            return Err(super::MetaError::Volume(format!(
                "volume '{}' has format version {}, this ringfs understands up to {}: upgrade ringfs",
                self.name, self.format_version, FORMAT_VERSION
            )));
        }
        if let Some(f) = self
            .features
            .iter()
            .find(|f| !KNOWN_FEATURES.contains(&f.as_str()))
        {
            return Err(super::MetaError::Volume(format!(
                "volume '{}' uses feature '{f}' unknown to this ringfs: upgrade ringfs",
                self.name
            )));
        }
        if !self.block_size.is_power_of_two()
            || !self.chunk_size.is_power_of_two()
            || self.chunk_size < self.block_size
        {
            return Err(super::MetaError::Corrupt(format!(
                "volume '{}': block size {} / chunk size {} invalid",
                self.name, self.block_size, self.chunk_size
            )));
        }
        Ok(())
    }
}

/// Volume names become Swift container names and etcd key segments: keep them plain.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("volume name '{name}' must be 1 to 63 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(format!(
            "volume name '{name}' may only contain letters, digits, '-', '_' and '.'"
        ));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(format!(
            "volume name '{name}' must start with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> VolumeRecord {
        VolumeRecord {
            name: "v".into(),
            uuid: "u".into(),
            format_version: FORMAT_VERSION,
            block_size: 4 << 20,
            chunk_size: 64 << 20,
            container: "ringfs-v".into(),
            features: vec![],
            created: 0,
        }
    }

    #[test]
    fn newer_format_is_refused() {
        let mut r = rec();
        assert!(VolumeRecord::decode(&r.encode()).is_ok());
        r.format_version = FORMAT_VERSION + 1;
        let e = VolumeRecord::decode(&r.encode()).unwrap_err().to_string();
        assert!(e.contains("format version"), "{e}");
        let mut r = rec();
        r.features = vec!["zstd".into()];
        assert!(VolumeRecord::decode(&r.encode()).is_err());
    }

    #[test]
    fn names() {
        assert!(check_volume_name("data-1").is_ok());
        assert!(check_volume_name("").is_err());
        assert!(check_volume_name("a/b").is_err());
        assert!(check_volume_name(&"x".repeat(64)).is_err());
    }
}
