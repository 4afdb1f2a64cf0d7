//! The personal store as the browser shows it: a folder's entries, and the
//! sync requests that turn its files into images.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::plain_text;

/// A file or folder in a personal store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEntry {
    pub name: String,
    pub folder: bool,
    /// Bytes, for a file.
    pub size: u64,
    #[cfg_attr(
        feature = "hydrate",
        serde(default, with = "crate::dates::rfc3339::option")
    )]
    pub modified: Option<DateTime<Utc>>,
}

/// One folder of a personal store: `path` is relative to its root (`""` is
/// the root), folders first, then files, each by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreListing {
    pub path: String,
    pub entries: Vec<StoreEntry>,
}

/// A sync of the personal store and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncInfo {
    pub id: i64,
    /// `VM` or `ISO`.
    pub kind: String,
    /// `SUBMITTED`, `PENDING`, `IN_PROGRESS`, `PROCESSED` or `ERROR`, as VSS says.
    pub status: String,
    pub added: i64,
    pub updated: i64,
    pub deleted: i64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub created_at: DateTime<Utc>,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub updated_at: DateTime<Utc>,
}

impl SyncInfo {
    /// Whether the request may still change (so a page showing it asks again).
    pub fn is_running(&self) -> bool {
        !matches!(self.status.as_str(), "PROCESSED" | "ERROR")
    }
}

/// The longest name of a file or folder in a personal store, and of a path
/// below its root, in bytes: what a file system or an object store's key
/// keeps.
pub const MAX_STORE_NAME: usize = 255;
pub const MAX_STORE_PATH: usize = 1024;

/// Whether a path inside a store (`/`-separated, its slashes at either end
/// aside) is longer than a store keeps: over [`MAX_STORE_PATH`] bytes, or
/// a name over [`MAX_STORE_NAME`].
pub fn beyond_store_limits(path: &[u8]) -> bool {
    let path = inside_slashes(path);
    path.len() > MAX_STORE_PATH
        || path
            .split(|&byte| byte == b'/')
            .any(|name| name.len() > MAX_STORE_NAME)
}

/// A path inside a store without the slashes at either end: what its
/// length is measured on.
pub fn inside_slashes(path: &[u8]) -> &[u8] {
    let start = path
        .iter()
        .position(|&byte| byte != b'/')
        .unwrap_or(path.len());
    let end = path
        .iter()
        .rposition(|&byte| byte != b'/')
        .map_or(start, |last| last + 1);
    &path[start..end]
}

/// A path inside a personal store, as a user names it: components joined
/// by `/`, none empty, `.` or `..`, no backslash or control character.
/// `""` is the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePath(Vec<String>);

impl StorePath {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let trimmed = raw.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Self(Vec::new()));
        }
        if beyond_store_limits(trimmed.as_bytes()) {
            return Err(CoreError::invalid(format!(
                "a file or folder name is at most {MAX_STORE_NAME} bytes, a store path at \
                 most {MAX_STORE_PATH}"
            )));
        }
        let mut parts = Vec::new();
        for part in trimmed.split('/') {
            if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
                return Err(CoreError::invalid(format!(
                    "'{raw}' is not a path inside your store"
                )));
            }
            plain_text("a store path", part)?;
            parts.push(part.to_owned());
        }
        Ok(Self(parts))
    }

    pub fn parts(&self) -> &[String] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path as text, without leading or trailing `/`.
    pub fn as_string(&self) -> String {
        self.0.join("/")
    }

    /// The folder above, for a path that is not the root.
    pub fn parent(&self) -> Option<StorePath> {
        (!self.0.is_empty()).then(|| Self(self.0[..self.0.len() - 1].to_vec()))
    }

    /// This path with one more component, checked as [`StorePath::parse`] checks.
    pub fn join(&self, name: &str) -> Result<StorePath, CoreError> {
        if name.contains('/') {
            return Err(CoreError::invalid("a name may not contain /"));
        }
        let mut joined = Self::parse(name)?;
        if joined.is_root() {
            return Err(CoreError::invalid("a name is required"));
        }
        let mut parts = self.0.clone();
        parts.append(&mut joined.0);
        let joined = Self(parts);
        // The name alone is measured above; the path it makes, here.
        if beyond_store_limits(joined.as_string().as_bytes()) {
            return Err(CoreError::invalid(format!(
                "a store path is at most {MAX_STORE_PATH} bytes"
            )));
        }
        Ok(joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_path_cannot_leave_the_store() {
        for bad in [
            "..",
            "a/../..",
            "a/./b",
            "a//b",
            "a\\..\\b",
            "evil\u{202e}",
            "nul\u{0}",
        ] {
            assert!(StorePath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(StorePath::parse(&"x".repeat(256)).is_err());
        assert!(StorePath::parse(&"x".repeat(255)).is_ok());
        let path = StorePath::parse("/isos/linux/").unwrap();
        assert_eq!(path.as_string(), "isos/linux");
        assert_eq!(path.parent().unwrap().as_string(), "isos");
        assert!(StorePath::parse("").unwrap().is_root());
        assert!(path.join("..").is_err());
        assert!(path.join("a/b").is_err());
        assert_eq!(path.join("x.iso").unwrap().as_string(), "isos/linux/x.iso");
        // Each name fits, the path they make does not.
        let long = StorePath::parse(&vec!["d".repeat(250); 4].join("/")).unwrap();
        assert!(long.join(&"e".repeat(255)).is_err());
        assert!(long.join("e").is_ok());
    }
}
