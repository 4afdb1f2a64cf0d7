//! Which copy of a blob's bytes a backend keeps: the digest, and the
//! generation that names this copy among the copies of the same bytes that
//! have been published over time.
//!
//! Each publication of bytes that are not there already makes a new
//! generation, and the database's row of the blob names the one its records
//! read. A generation is removed only once no row names it, and none ever
//! will again: so a removal that lands late (an object store that timed out
//! a `DELETE` and carried it out afterwards, a server that died after
//! sending it) takes bytes nobody reads, never those that the same content
//! uploaded again since was published as. With one name per digest, that
//! upload found the old bytes still there, kept them instead of its own,
//! and lost them to the late delete.

use super::is_sha256;

/// A published copy of a blob's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey {
    pub sha256: String,
    /// 16 hex digits; empty for the copy published before generations, under
    /// the digest alone.
    pub generation: String,
}

impl BlobKey {
    pub fn new(sha256: &str, generation: &str) -> Self {
        Self {
            sha256: sha256.to_owned(),
            generation: generation.to_owned(),
        }
    }

    /// The copy of the bytes of `sha256` that `generation` (a blob row's)
    /// names, if it names one and both halves are well formed.
    pub fn named(sha256: &str, generation: Option<&str>) -> Option<Self> {
        let key = Self::new(sha256, generation?);
        key.is_valid().then_some(key)
    }

    /// A new generation of the bytes of `sha256`.
    pub fn fresh(sha256: &str) -> Self {
        Self::new(sha256, &format!("{:016x}", rand::random::<u64>()))
    }

    /// Whether both halves are well formed: a key that is not never names
    /// a path or an object.
    pub fn is_valid(&self) -> bool {
        is_sha256(&self.sha256) && is_generation(&self.generation)
    }

    /// The name the copy is kept under in its prefix folder: the digest,
    /// then the generation after a dot.
    pub fn file_name(&self) -> String {
        if self.generation.is_empty() {
            self.sha256.clone()
        } else {
            format!("{}.{}", self.sha256, self.generation)
        }
    }

    /// The key a copy's [`BlobKey::file_name`] names, if it is one.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let key = match name.split_once('.') {
            None => Self::new(name, ""),
            Some((sha256, generation)) if !generation.is_empty() => Self::new(sha256, generation),
            Some(_) => return None,
        };
        key.is_valid().then_some(key)
    }

    /// The prefix folder its file is kept in: the digest's first two digits
    /// (nothing for a key that is not valid, which names no file).
    pub fn folder(&self) -> &str {
        self.sha256.get(..2).unwrap_or_default()
    }
}

fn is_generation(text: &str) -> bool {
    text.is_empty()
        || (text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_nothing_else_names_a_copy() {
        let sha256 = "ab".repeat(32);
        let fresh = BlobKey::fresh(&sha256);
        assert_ne!(fresh, BlobKey::fresh(&sha256));
        for key in [fresh, BlobKey::new(&sha256, "")] {
            assert_eq!(BlobKey::from_file_name(&key.file_name()), Some(key));
        }
        for name in [
            "../../etc/passwd".to_owned(),
            format!("{sha256}."),
            format!("{sha256}.0123456789ABCDEF"),
            format!("{sha256}.0123456789abcdef0"),
            format!("{sha256}.0123456789abcde/"),
            format!(".{sha256}.0123456789abcdef.partial"),
        ] {
            assert_eq!(BlobKey::from_file_name(&name), None, "{name}");
        }
    }
}
