//! The server's secret key. It signs access tokens (JWTs) and is the root of
//! every other key Depot needs; each use gets its own key derived from it,
//! so that no two purposes ever share one.

use std::path::Path;

use anyhow::Context;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The file in the data folder that holds the key when none is given.
const KEY_FILE: &str = "secret.key";

/// The root key. Its bytes never leave this type (and `Debug` hides them).
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl ServerKey {
    /// A key from operator-supplied text (`DEPOT_SECRET_KEY`): any string of
    /// at least 32 characters, hashed down to 32 bytes.
    pub fn from_text(text: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            text.chars().count() >= 32,
            "the secret key must be at least 32 characters long"
        );
        Ok(Self(Sha256::digest(text.as_bytes()).into()))
    }

    /// The key given by the operator, or the one kept in the data folder,
    /// created (readable by the owner only) on first use.
    pub async fn load(data_dir: &Path, given: Option<&str>) -> anyhow::Result<Self> {
        if let Some(text) = given {
            return Self::from_text(text);
        }
        let path = data_dir.join(KEY_FILE);
        forget_old_partials(data_dir).await;
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Self::from_hex(text.trim())
                .with_context(|| format!("{} is not a key Depot wrote", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Self::create(&path).await,
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn from_hex(text: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(text)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("a key is 32 bytes"))?;
        Ok(Self(bytes))
    }

    async fn create(path: &Path) -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let text = hex::encode(bytes);
        let path_owned = path.to_owned();
        // Written whole under a name of its own, then linked to its name,
        // which fails if that is taken: two processes starting at once
        // cannot each keep a different key (the loser reads the winner's,
        // never a file still being written), and a crash midway leaves no
        // empty key file that would stop every later start.
        let written = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            #[cfg(unix)]
            use std::os::unix::fs::OpenOptionsExt;
            let partial = path_owned
                .with_file_name(format!("{KEY_FILE}.{:016x}.partial", rand::random::<u64>()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            options.mode(0o600);
            let write = |path: &std::path::Path| {
                let mut file = options.open(path)?;
                file.write_all(text.as_bytes())?;
                file.sync_all()
            };
            // A partial file that could not be written (a full disk) is
            // the error, as it is.
            let linked = write(&partial).map(|()| std::fs::hard_link(&partial, &path_owned));
            let _ = std::fs::remove_file(&partial);
            match linked? {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(error)
                }
                // A file system without hard links (SMB, FAT, some FUSE
                // stores): the key is written in place, as before; a write
                // that fails there leaves no key file behind.
                Err(error) => {
                    tracing::warn!(%error, "cannot link the new secret key into place; writing it there");
                    if let Err(error) = write(&path_owned) {
                        if error.kind() != std::io::ErrorKind::AlreadyExists {
                            let _ = std::fs::remove_file(&path_owned);
                        }
                        return Err(error);
                    }
                }
            }
            if let Some(folder) = path_owned.parent() {
                std::fs::File::open(folder)?.sync_all()?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await?;
        match written {
            Ok(()) => Ok(Self(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = tokio::fs::read_to_string(path).await?;
                Self::from_hex(text.trim())
            }
            Err(error) => Err(error).with_context(|| format!("cannot write {}", path.display())),
        }
    }

    /// The key for one purpose: HMAC-SHA256 of the purpose under the root key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Removes the partial key files a start that crashed left (copies of a
/// key, or of one never used), once a minute old: a start under way now
/// may be writing one.
async fn forget_old_partials(data_dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(data_dir).await else {
        return;
    };
    let prefix = format!("{KEY_FILE}.");
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(&prefix) && name.ends_with(".partial")) {
            continue;
        }
        let old = entry
            .metadata()
            .await
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| {
                modified
                    .elapsed()
                    .is_ok_and(|age| age > std::time::Duration::from_secs(60))
            });
        if old {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerKey::load(dir.path(), None).await.unwrap();
        let second = ServerKey::load(dir.path(), None).await.unwrap();
        assert_eq!(first.derive("jwt"), second.derive("jwt"));
        assert_ne!(first.derive("jwt"), first.derive("credentials"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn servers_starting_at_once_keep_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let loads = (0..8).map(|_| {
                let dir = dir.path().to_owned();
                tokio::spawn(async move { ServerKey::load(&dir, None).await })
            });
            let keys: Vec<_> = futures_util::future::join_all(loads)
                .await
                .into_iter()
                .map(|joined| joined.unwrap().unwrap().derive("jwt"))
                .collect();
            assert!(keys.iter().all(|key| *key == keys[0]));
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "{left:?}");
        }
    }

    #[test]
    fn given_keys_must_be_long_and_are_hidden() {
        assert!(ServerKey::from_text("short").is_err());
        let key = ServerKey::from_text(&"k".repeat(32)).unwrap();
        assert_eq!(format!("{key:?}"), "ServerKey(***)");
    }
}
