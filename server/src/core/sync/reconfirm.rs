//! Synced copies made before sources were kept (an upgrade's), whose file
//! may still hold their bytes. The quota counts such a copy on its own;
//! reading its file once and finding its bytes records its source. Unlike
//! a sync, this adds, changes and removes no image. (A copy whose file
//! shows another source with the same bytes, after a restore or a
//! `chown -R`, is left to its owner's next sync, which reads it again: a
//! start-up does not list every store.)

use std::collections::HashMap;

use app::error::CoreError;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

use super::Source;
use crate::core::quota::place_in_store;
use crate::core::{db_error, Core};
use crate::personal::StoreFile;
use crate::store::SyncedCopy;

impl Core {
    /// Records the source of each synced copy without one whose file holds
    /// its bytes; answers how many. Only those copies' owners' stores are
    /// listed, each once, and only files of a copy's size are read.
    pub async fn reconfirm_synced_copies(&self) -> Result<usize, CoreError> {
        let copies = self
            .db
            .unsourced_copies(&self.limits.personal_data_store)
            .await
            .map_err(db_error)?;
        let mut owners: HashMap<i64, Vec<SyncedCopy>> = HashMap::new();
        for copy in copies {
            owners.entry(copy.owner_id).or_default().push(copy);
        }
        let mut recorded = 0;
        for (owner, copies) in owners {
            let files = match self.personal.files(owner).await {
                Ok(Some(files)) => files,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(owner, %error, "cannot list a personal store");
                    continue;
                }
            };
            let files = crate::personal::by_place(&files);
            for copy in &copies {
                if let Some(file) = files.get(&place_in_store(copy)) {
                    recorded += usize::from(self.reconfirm(owner, copy, file).await);
                }
            }
        }
        Ok(recorded)
    }

    /// Records a copy's source if its file holds its bytes; answers
    /// whether it did.
    async fn reconfirm(&self, owner: i64, copy: &SyncedCopy, file: &StoreFile) -> bool {
        let Some(sha256) = &copy.sha256 else {
            return false;
        };
        // Taken before the read: a file changed meanwhile shows another.
        let source = Source::file(file);
        let candidate = copy.size == i64::try_from(file.size).ok()
            // A package is its descriptor's and disks' bytes, never its file's.
            && !copy.name.to_ascii_lowercase().ends_with(".ovf");
        if !candidate {
            return false;
        }
        match self.file_digest(owner, file).await {
            Ok(digest) if digest == *sha256 => {
                let set = self.db.set_synced_from(copy.id, source.as_str(), sha256);
                match set.await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "cannot record a synced copy's source");
                        false
                    }
                }
            }
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(owner, %error, "cannot read a personal-store file");
                false
            }
        }
    }

    /// The SHA-256 of a personal-store file, in hex.
    async fn file_digest(&self, owner: i64, file: &StoreFile) -> std::io::Result<String> {
        let mut stream = self.personal.read(owner, &file.relative).await?;
        let mut digest = Sha256::new();
        while let Some(chunk) = stream.try_next().await? {
            digest.update(&chunk);
        }
        Ok(hex::encode(digest.finalize()))
    }
}
