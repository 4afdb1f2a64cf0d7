//! One server a folder: the data folder, and a local blob folder named
//! elsewhere (`--blob-store file:///…`), are held by the server serving
//! them for as long as its process lives.
//!
//! A server starting on a folder another one serves would wipe that one's
//! uploads in flight (it discards what a crash left half written as it
//! starts), and the two would keep quotas, caches and locks that only one
//! process can keep. SQLite and a local folder are one process's; several
//! servers share a PostgreSQL database and an object store, each with a
//! data folder of its own (README, "Several servers"). The lock is the
//! operating system's (`flock`), so it goes with the process however that
//! ends, a `kill -9` too: no stale lock to clear after a crash.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{BlobStoreUrl, StorageArgs};

/// The file in each held folder whose lock holds it; it names the process
/// holding it, for the refusal's message.
const LOCK_FILE: &str = "depot.lock";

/// The folders this process serves, held until it is dropped.
#[derive(Debug)]
pub struct HeldFolders {
    _locks: Vec<File>,
}

impl HeldFolders {
    /// Holds them until the process ends, past the runtime's shutdown,
    /// which waits for blocking work still writing in them.
    pub fn until_exit(self) {
        std::mem::forget(self);
    }
}

/// Takes the folders `storage` serves from on this machine (creating them):
/// the data folder and the local blob folder, the data folder's `store/`
/// unless another is named (another server may name that one with
/// `--blob-store`); or refuses, naming the process that holds one.
pub fn hold_folders(storage: &StorageArgs) -> anyhow::Result<HeldFolders> {
    let mut folders: Vec<PathBuf> = vec![storage.data_dir.clone()];
    match &storage.blob_store {
        None => folders.push(storage.data_dir.join("store")),
        Some(BlobStoreUrl::Folder(folder)) => folders.push(folder.clone()),
        Some(BlobStoreUrl::S3 { .. }) => {}
    }
    let mut locks: Vec<(PathBuf, File)> = Vec::with_capacity(folders.len());
    for folder in folders {
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create the folder {}", folder.display()))?;
        // Compared once they exist, however they are written: the same
        // folder twice (a blob folder that is the data folder) would refuse
        // itself, as `flock`s of two opens of one file conflict.
        let folder = folder
            .canonicalize()
            .with_context(|| format!("cannot find the folder {}", folder.display()))?;
        if locks.iter().any(|(held, _)| *held == folder) {
            continue;
        }
        let lock = hold(&folder)?;
        locks.push((folder, lock));
    }
    Ok(HeldFolders {
        _locks: locks.into_iter().map(|(_, lock)| lock).collect(),
    })
}

fn hold(folder: &Path) -> anyhow::Result<File> {
    let path = folder.join(LOCK_FILE);
    // Not a link planted there: the file is written.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // Best effort: the message names the process if it can.
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                pid if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
                    format!(" (process {pid})")
                }
                _ => String::new(),
            };
            anyhow::bail!(
                "another Depot server{holder} is serving {}: a folder is one server's. Stop \
                 it first; or give this server a data folder of its own (--data-dir), and \
                 share a PostgreSQL database and an object store between servers (README, \
                 \"Several servers\")",
                folder.display()
            );
        }
        // Refused too: a server that cannot know it is alone on a folder
        // does not clean it up.
        Err(TryLockError::Error(error)) => {
            return Err(error).with_context(|| {
                format!(
                    "cannot lock {} (a filesystem without locks, such as NFSv3 without \
                     its lock daemon, cannot hold a server's folder)",
                    path.display()
                )
            });
        }
    }
    // Ours now: it names this process, in one write of a fixed width over
    // the last holder's, so that it is never read empty, stale or mixed.
    let pid = format!("{:<20}\n", std::process::id());
    file.rewind()?;
    file.write_all(pid.as_bytes())?;
    file.set_len(pid.len() as u64)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(data: &Path, blobs: Option<&Path>) -> StorageArgs {
        StorageArgs {
            blob_store: blobs.map(|folder| BlobStoreUrl::Folder(folder.to_owned())),
            ..StorageArgs::in_folder(data.to_owned())
        }
    }

    /// A server's default blob folder (its data folder's `store/`) is
    /// held too: another server naming it with `--blob-store` is refused.
    #[test]
    fn the_default_blob_folder_is_held_with_the_data_folder() {
        let (data, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let _held = hold_folders(&storage(data.path(), None)).unwrap();
        let store = data.path().join("store");
        let refused = hold_folders(&storage(other.path(), Some(&store))).unwrap_err();
        assert!(
            refused.to_string().contains("another Depot server"),
            "{refused}"
        );
    }

    /// A lock file planted as a link is not followed: what it points to is
    /// neither locked nor written, and the server does not start.
    #[test]
    fn a_lock_file_that_is_a_link_is_refused_and_its_target_kept() {
        let (data, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let target = elsewhere.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        std::os::unix::fs::symlink(&target, data.path().join(LOCK_FILE)).unwrap();
        hold_folders(&storage(data.path(), None)).unwrap_err();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }

    #[test]
    fn a_held_folder_is_refused_until_it_is_let_go() {
        let data = tempfile::tempdir().unwrap();
        let held = hold_folders(&storage(data.path(), None)).unwrap();
        let refused = hold_folders(&storage(data.path(), None)).unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains(&format!("(process {})", std::process::id())),
            "{message}"
        );
        assert!(message.contains("another Depot server"), "{message}");
        drop(held);
        hold_folders(&storage(data.path(), None)).unwrap();
    }

    #[test]
    fn a_blob_folder_elsewhere_is_held_too_and_the_data_folder_as_it_once() {
        let (data, other_data, blobs) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let _held = hold_folders(&storage(data.path(), Some(blobs.path()))).unwrap();
        let refused = hold_folders(&storage(other_data.path(), Some(blobs.path()))).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains(&blobs.path().display().to_string()),
            "{refused}"
        );
        // A blob folder that is the data folder is held once, however the
        // two are written, made by the server or not.
        let alone = tempfile::tempdir().unwrap();
        let data = alone.path().join("data");
        hold_folders(&storage(&data, Some(&alone.path().join("./data/../data")))).unwrap();
    }
}
