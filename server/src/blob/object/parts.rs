//! Resumable uploads' parts in the store: one object per chunk received,
//! `uploads/<upload id>/<offset>-<random>`, uploaded in place as a personal
//! store's file is; the database records which are the upload's.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;

use super::read::ObjectBlob;
use super::{discard_in_background, io_error, ObjectBlobs, ObjectStaging};
use crate::blob::{
    is_upload_name, not_found, Blob, ByteStream, Part, PartWriting, Staging, WrittenPart,
};

/// A chunk of a resumable upload on its way up as a part of its own.
struct ObjectPartWriting {
    staging: ObjectStaging,
    name: String,
}

#[async_trait::async_trait]
impl PartWriting for ObjectPartWriting {
    async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        self.staging.write(bytes).await
    }

    async fn finish(self: Box<Self>) -> std::io::Result<Box<dyn WrittenPart>> {
        let Self { staging, name } = *self;
        let key = staging.key.clone();
        let store = staging.store.clone();
        staging.finish_in_place().await?;
        Ok(Box::new(ObjectPart {
            store,
            key: Some(key),
            name,
        }))
    }
}

/// A part in the store, deleted when dropped unless kept.
#[derive(Debug)]
struct ObjectPart {
    store: ObjectBlobs,
    key: Option<Path>,
    name: String,
}

impl WrittenPart for ObjectPart {
    fn name(&self) -> &str {
        &self.name
    }

    fn keep(mut self: Box<Self>) {
        self.key = None;
    }
}

impl Drop for ObjectPart {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            discard_in_background(&self.store, key, "a part; it goes with its upload");
        }
    }
}

impl ObjectBlobs {
    /// Where resumable upload `upload` keeps its parts.
    fn upload_folder(&self, upload: &str) -> std::io::Result<Path> {
        if is_upload_name(upload) {
            Ok(self.area("uploads").child(upload))
        } else {
            Err(not_found("bad upload id"))
        }
    }

    /// Begins a part of `upload` at `offset`, as an object of its own.
    pub(super) fn begin_part(
        &self,
        upload: &str,
        offset: u64,
    ) -> std::io::Result<Box<dyn PartWriting>> {
        // Named by its offset and at random: a request racing this one at
        // the same offset writes a part of its own, and the database
        // records the one whose request got there first.
        let name = format!("{offset:020}-{:016x}", rand::random::<u64>());
        let key = self.upload_folder(upload)?.child(name.as_str());
        Ok(Box::new(ObjectPartWriting {
            staging: self.begin_upload_in_place(key),
            name,
        }))
    }

    /// The bytes of `parts` of `upload`, in order.
    pub(super) fn read_upload_parts(
        &self,
        upload: &str,
        parts: &[Part],
    ) -> std::io::Result<ByteStream> {
        let folder = self.upload_folder(upload)?;
        let mut keys = Vec::with_capacity(parts.len());
        for part in parts {
            if !is_upload_name(&part.name.replace('-', "")) {
                return Err(not_found("bad part name"));
            }
            keys.push((folder.child(part.name.as_str()), part.size));
        }
        let bucket = self.bucket.clone();
        let bytes = futures_util::stream::iter(keys)
            .then(move |(key, size)| {
                let bucket = bucket.clone();
                async move {
                    let part = ObjectBlob {
                        bucket,
                        key,
                        length: size,
                    };
                    Box::new(part).read(0, size).await
                }
            })
            .try_flatten();
        Ok(Box::pin(bytes))
    }

    /// Deletes every part of `upload`, recorded or not.
    pub(super) async fn remove_upload_parts(&self, upload: &str) -> std::io::Result<()> {
        let folder = self.upload_folder(upload)?;
        let parts: Vec<object_store::ObjectMeta> = self
            .bucket
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(io_error)?;
        for part in parts {
            self.delete(&part.location).await?;
        }
        Ok(())
    }

    /// The uploads whose newest part is older than `grace`.
    pub(super) async fn untouched_uploads(&self, grace: Duration) -> std::io::Result<Vec<String>> {
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        let folder = self.area("uploads");
        let parts: Vec<object_store::ObjectMeta> = self
            .bucket
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(io_error)?;
        // An upload is untouched when its newest part is.
        let mut newest = std::collections::HashMap::<String, chrono::DateTime<Utc>>::new();
        for part in parts {
            let Some(upload) = part
                .location
                .prefix_match(&folder)
                .and_then(|mut rest| rest.next())
            else {
                continue;
            };
            let latest = newest
                .entry(upload.as_ref().to_owned())
                .or_insert(part.last_modified);
            *latest = (*latest).max(part.last_modified);
        }
        Ok(newest
            .into_iter()
            .filter(|(_, latest)| *latest <= cutoff)
            .map(|(upload, _)| upload)
            .collect())
    }
}
