use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use app::model::ImageKind;
use bytes::Bytes;
use chrono::Utc;

use super::*;
use crate::blob::{Limit, StagedBytes};
use crate::core::{demo, test_core, Limits};
use crate::store::Db;

/// Staged bytes whose preparation never serves, as when the blob's copy it
/// counted on is removed before the lock each time: they come back
/// whenever they may. Each preparation is counted, and first takes the
/// blob's lock itself, which waits (and fails the test) while the attach
/// still holds it.
#[derive(Debug)]
struct PreparedInVain {
    bytes: Box<dyn StagedBytes>,
    db: Db,
    preparations: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl StagedBytes for PreparedInVain {
    async fn prepare(&mut self, sha256: &str, current: Option<&str>) -> io::Result<()> {
        let lock = tokio::time::timeout(Duration::from_secs(5), self.db.lock_blob(sha256))
            .await
            .expect("the blob's lock is let go while its bytes are prepared again")
            .map_err(io::Error::other)?;
        drop(lock);
        self.preparations.fetch_add(1, Ordering::SeqCst);
        self.bytes.prepare(sha256, current).await
    }

    async fn publish(
        self: Box<Self>,
        sha256: &str,
        current: Option<&str>,
        long: LongCopy,
    ) -> io::Result<Publication<Box<dyn StagedBytes>>> {
        match long {
            LongCopy::GiveBack => Ok(Publication::Unprepared(self)),
            LongCopy::Make => self.bytes.publish(sha256, current, long).await,
        }
    }
}

#[tokio::test]
async fn bytes_prepared_in_vain_are_prepared_again_outside_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let core = test_core(dir.path(), Limits::default()).await;
    let body = futures_util::stream::iter([Ok::<_, io::Error>(Bytes::from_static(b"hello world"))]);
    let (staged, ()) = core
        .blobs
        .ingest(body, &mut Limit(100), |_| ())
        .await
        .unwrap();
    let preparations = Arc::new(AtomicUsize::new(0));
    let staged = staged.wrapped(|bytes| {
        Box::new(PreparedInVain {
            bytes,
            db: core.db.clone(),
            preparations: preparations.clone(),
        })
    });
    let sha256 = staged.sha256.clone();
    let mut new = demo::record(ImageKind::Iso, "tests", "hello.iso", Utc::now());
    new.size = Some(11);
    new.sha256 = Some(sha256.clone());
    let attached = core
        .attach_blob(staged, Attach::Insert(&new), Landing::Alone, None)
        .await;
    attached.expect("published on the last try, whatever copy it took");
    let preparations = preparations.load(Ordering::SeqCst);
    assert!(preparations > 1, "never prepared again");
    assert_eq!(
        preparations, PREPARATIONS as usize,
        "prepared again each time the bytes came back"
    );
    let copy = core.published_copy(&sha256).await.unwrap();
    assert!(core.blobs.exists(&copy).await, "the record's copy is there");
}
