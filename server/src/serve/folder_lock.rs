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

/// Takes the folders `storage` serves from on this machine (creating them),
/// or refuses, naming the process that holds one.
pub fn hold_folders(storage: &StorageArgs) -> anyhow::Result<HeldFolders> {
    let mut folders: Vec<PathBuf> = vec![storage.data_dir.clone()];
    if let Some(BlobStoreUrl::Folder(folder)) = &storage.blob_store {
        folders.push(folder.clone());
    }
    let mut locks = Vec::with_capacity(folders.len());
    for folder in folders {
        // The same folder twice (a blob folder that is the data folder)
        // would refuse itself: `flock`s of two opens of one file conflict.
        if locks
            .iter()
            .any(|(held, _): &(PathBuf, File)| same_folder(held, &folder))
        {
            continue;
        }
        let lock = hold(&folder)?;
        locks.push((folder, lock));
    }
    Ok(HeldFolders {
        _locks: locks.into_iter().map(|(_, lock)| lock).collect(),
    })
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn hold(folder: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create the folder {}", folder.display()))?;
    let path = folder.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
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
        Err(TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    // Ours now: it names this process.
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
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
        // A blob folder that is the data folder is held once.
        let alone = tempfile::tempdir().unwrap();
        hold_folders(&storage(alone.path(), Some(alone.path()))).unwrap();
    }
}
