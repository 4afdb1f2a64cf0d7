//! One chunk at a time per upload on this server, so that no two requests
//! write at the same offset: a local file has one writer. (Across servers
//! of a shared store, parts have names of their own and the database takes
//! one of two racing chunks.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use app::error::CoreError;

/// How long a chunk waits for the one before it on the same upload (a
/// request the client gave up on, still being wound up) before it is told
/// to try again.
const WRITER_WAIT: Duration = Duration::from_secs(10);

/// The uploads a chunk is being written to on this server.
#[derive(Default)]
pub struct Writers {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The right to write the next chunk of one upload, while it lives.
pub(super) struct Writing<'a> {
    writers: &'a Writers,
    id: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Writers {
    fn locks(&self) -> MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits (a while) for the upload's chunk being written to end.
    pub(super) async fn claim(&self, id: &str) -> Result<Writing<'_>, CoreError> {
        let lock = self.locks().entry(id.to_owned()).or_default().clone();
        let mut writing = Writing {
            writers: self,
            id: id.to_owned(),
            guard: None,
        };
        let locked = tokio::time::timeout(WRITER_WAIT, lock.lock_owned()).await;
        match locked {
            Ok(guard) => {
                writing.guard = Some(guard);
                Ok(writing)
            }
            Err(_) => Err(CoreError::Conflict(format!(
                "a chunk of upload {id} is still being written; try again shortly"
            ))),
        }
    }
}

impl Writers {
    /// The uploads a chunk is being written to, or waits to be, here.
    pub(crate) fn busy(&self) -> Vec<String> {
        self.locks().keys().cloned().collect()
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut locks = self.writers.locks();
        drop(self.guard.take());
        // The last one out removes the upload's lock.
        if locks
            .get(&self.id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.id);
        }
    }
}
