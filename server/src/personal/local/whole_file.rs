//! A whole file written into a local store: under a hidden name in its
//! folder, then renamed over its target once complete and synced.

use std::io::{self, ErrorKind, SeekFrom};
use std::path::PathBuf;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture};
use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;

use super::is_partial;
use crate::personal::{seek_in_order, EntryMeta};

/// A whole-file write in progress: the hidden file and its target.
#[derive(Debug)]
pub(super) struct WholeFile {
    file: Option<tokio::fs::File>,
    temp: PathBuf,
    target: PathBuf,
    written: u64,
    /// The length the request announced: a body that ends short (or runs
    /// long) replaces nothing.
    expected: Option<u64>,
    /// Whether the target must not exist when the write completes either.
    only_new: bool,
    done: bool,
}

impl WholeFile {
    /// A write of `target` into `file`, open at `temp`, of `expected`
    /// bytes if announced; `only_new` if the target must not exist when
    /// it completes.
    pub(super) fn new(
        file: tokio::fs::File,
        temp: PathBuf,
        target: PathBuf,
        expected: Option<u64>,
        only_new: bool,
    ) -> Self {
        Self {
            file: Some(file),
            temp,
            target,
            written: 0,
            expected,
            only_new,
            done: false,
        }
    }

    /// Makes the written bytes the target's, in one step. The hidden file
    /// stays open until then, to be found if a move took it away.
    async fn replace_target(&mut self) -> io::Result<()> {
        if let Some(file) = &self.file {
            file.sync_all().await?;
        }
        if self.only_new {
            // A link fails if the target appeared meanwhile; a rename would
            // replace it.
            tokio::fs::hard_link(&self.temp, &self.target).await?;
            tokio::fs::remove_file(&self.temp).await?;
        } else {
            tokio::fs::rename(&self.temp, &self.target).await?;
        }
        self.file = None;
        if let Some(folder) = self.target.parent() {
            tokio::fs::File::open(folder).await?.sync_all().await?;
        }
        Ok(())
    }
}

impl Drop for WholeFile {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let removed = std::fs::remove_file(&self.temp);
        if let (Err(error), Some(file)) = (removed, &self.file) {
            if error.kind() == ErrorKind::NotFound {
                remove_moved_partial(file);
            }
        }
    }
}

/// Removes a write's hidden file, open as `file`, from wherever it is now.
/// A move of a folder it was in takes it along, where its name as the write
/// knows it no longer finds it; left there, its bytes were counted by no
/// walk of the store and named by no request, and kept the folder from
/// being deleted, until the server started again. (Linux tells where an
/// open file is now; a file named otherwise is not a write's.)
fn remove_moved_partial(file: &impl std::os::fd::AsRawFd) {
    let link = format!("/proc/self/fd/{}", file.as_raw_fd());
    // Moved again as it was looked for: looked for again.
    for _ in 0..3 {
        let Ok(now) = std::fs::read_link(&link) else {
            return;
        };
        if !now
            .file_name()
            .is_some_and(|name| is_partial(name.as_encoded_bytes()))
        {
            return;
        }
        match std::fs::remove_file(&now) {
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            _ => return,
        }
    }
}

impl DavFile for WholeFile {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        async move {
            let meta = if self.done {
                let meta = tokio::fs::metadata(&self.target)
                    .await
                    .map_err(FsError::from)?;
                EntryMeta {
                    len: meta.len(),
                    modified: meta.modified().unwrap_or_else(|_| SystemTime::now()),
                    dir: false,
                }
            } else {
                EntryMeta {
                    len: self.written,
                    modified: SystemTime::now(),
                    dir: false,
                }
            };
            Ok(Box::new(meta) as Box<dyn DavMetaData>)
        }
        .boxed()
    }

    fn write_buf(&'_ mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.write_bytes(bytes)
    }

    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move {
            let file = self.file.as_mut().ok_or(FsError::GeneralFailure)?;
            file.write_all(&buf).await.map_err(FsError::from)?;
            self.written += buf.len() as u64;
            Ok(())
        }
        .boxed()
    }

    fn read_bytes(&'_ mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let sought = seek_in_order(pos, self.written);
        async move { sought }.boxed()
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        async move {
            if self.done {
                return Ok(());
            }
            if self
                .expected
                .is_some_and(|expected| expected != self.written)
            {
                return Err(FsError::GeneralFailure);
            }
            match self.replace_target().await {
                Ok(()) => {
                    self.done = true;
                    Ok(())
                }
                Err(error) if error.kind() == ErrorKind::AlreadyExists => Err(FsError::Exists),
                // Its folder was moved or deleted meanwhile (the hidden
                // file with it, which its drop removes).
                Err(error) if error.kind() == ErrorKind::NotFound => Err(FsError::NotFound),
                Err(error) => {
                    tracing::warn!(%error, "cannot complete a write into a personal store");
                    Err(FsError::GeneralFailure)
                }
            }
        }
        .boxed()
    }
}
