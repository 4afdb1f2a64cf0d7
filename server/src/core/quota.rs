//! Per-user quotas, held under concurrency and on every path.
//!
//! What counts against a user's quota: the images they uploaded, the files
//! in their personal store (and the copies a sync made of them that are no
//! longer those files' bytes: see [`Core::personal_store_bytes`]), the files
//! deployed for them, and the bytes reserved for their uploads in flight. An upload reserves room before its bytes are
//! written, step by step as it grows, in the same transaction that counts
//! the rest (see [`crate::store::QuotaAsk`]); it lets go of the reservation
//! when it lands or fails. Two uploads that fit alone but not together can
//! therefore never both land.

use std::time::Duration;

use chrono::Utc;

use super::sync::Source;
use super::Core;
use crate::blob::{Allowance, IngestError};
use crate::personal::StoreFile;
use crate::store::{Db, QuotaAsk, SyncedCopy};

/// How much an upload reserves ahead of what it has received.
pub const RESERVATION_STEP: u64 = 64 << 20;

/// How long a reservation lasts without growing (a crashed server's expire).
const RESERVATION_TTL: Duration = Duration::from_secs(3600);

/// How often a step that could outlast its write's reservation renews it
/// ([`ReservationKeeper`]): several times within its life.
pub const RESERVATION_RENEWED_EVERY: Duration = Duration::from_secs(RESERVATION_TTL.as_secs() / 4);

/// Renews one write's reservation, if it has one, every so often while a
/// step runs that could outlast it: a copy of a large file, or the making
/// of an image's copy in an object store (one over 5 GiB streams through
/// the server), past which its room would count no more, for other writes
/// to take.
pub struct ReservationKeeper {
    db: Db,
    reservation: Option<i64>,
    every: Duration,
}

impl ReservationKeeper {
    /// For `reservation` (if any) of a write of `core`'s.
    pub fn new(core: &Core, reservation: Option<i64>) -> Self {
        Self {
            db: core.db.clone(),
            reservation,
            every: core.limits.reservations_renewed_every,
        }
    }

    /// Runs `step` to its end, the reservation renewed meanwhile.
    pub async fn during<T>(&self, step: impl std::future::Future<Output = T>) -> T {
        crate::core::renewing::renewing(step, self.every, || self.renew()).await
    }

    async fn renew(&self) {
        let Some(id) = self.reservation else {
            return;
        };
        match renew_reservation(&self.db, id).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("a write's quota reservation lapsed before it ended"),
            Err(error) => tracing::warn!(%error, "cannot renew a write's quota reservation"),
        }
    }
}

/// Extends reservation `id`'s life, if it has not lapsed; answers whether
/// it had not.
async fn renew_reservation(db: &Db, id: i64) -> Result<bool, sqlx::Error> {
    let now_ms = Utc::now().timestamp_millis();
    let expires_ms = now_ms.saturating_add(RESERVATION_TTL.as_millis() as i64);
    db.renew_reservation(id, now_ms, expires_ms).await
}

/// How long a reservation moved into a personal store still counts for the
/// counts whose listing began before the move: longer than any listing.
const MOVED_RESERVATION_TTL: Duration = Duration::from_secs(600);

impl Core {
    /// The bytes a user's personal store holds against the quota: its
    /// files, and the copies a sync made of them that are not those files'
    /// bytes (the file changed or went and no sync has caught up, or an
    /// `.ovf` packed with its disks). A copy of a file as it is counts
    /// once, as the file.
    pub(super) async fn personal_store_bytes(&self, user_id: i64) -> Result<u64, IngestError> {
        let files = self.personal.files(user_id).await?.unwrap_or_default();
        let copies = self
            .db
            .synced_copies(user_id, &self.limits.personal_data_store)
            .await
            .map_err(quota_db_failed)?;
        let stored: u64 = files.iter().map(|file| file.size).sum();
        Ok(stored.saturating_add(unbacked_bytes(&files, &copies)))
    }

    /// Reserves between `needed` and `wanted` bytes for a user's upload,
    /// growing `reservation`; answers the bytes granted.
    pub(super) async fn reserve(
        &self,
        user_id: i64,
        quota: u64,
        reservation: &mut Option<i64>,
        needed: u64,
        wanted: u64,
    ) -> Result<u64, IngestError> {
        let expires_ms = Utc::now()
            .timestamp_millis()
            .saturating_add(RESERVATION_TTL.as_millis() as i64);
        self.reserve_until(user_id, quota, reservation, needed, wanted, expires_ms)
            .await
    }

    /// Reserves `length` bytes for a resumable upload until `expires_ms`
    /// (it outlives any one request); answers the reservation, if the user
    /// has a quota.
    pub(super) async fn reserve_for_upload(
        &self,
        user_id: i64,
        length: u64,
        expires_ms: i64,
    ) -> Result<Option<i64>, IngestError> {
        let Some(quota) = self.limits.user_quota_bytes else {
            return Ok(None);
        };
        let mut reservation = None;
        self.reserve_until(user_id, quota, &mut reservation, length, length, expires_ms)
            .await?;
        Ok(reservation)
    }

    /// [`Core::reserve`], with the reservation's expiry given.
    async fn reserve_until(
        &self,
        user_id: i64,
        quota: u64,
        reservation: &mut Option<i64>,
        needed: u64,
        wanted: u64,
        expires_ms: i64,
    ) -> Result<u64, IngestError> {
        // A write whose bytes move from its reservation into the store's
        // files while they are listed (see `release_into_store`) is in
        // neither the listing nor, once moved, the reservations: so the
        // reservations moved after the epoch read here still count. The
        // listing holds no lock; the grant is one short transaction.
        let listed_epoch = self
            .db
            .quota_epoch(user_id)
            .await
            .map_err(quota_db_failed)?;
        let outside = self.personal_store_bytes(user_id).await?;
        let now_ms = Utc::now().timestamp_millis();
        let clamp = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
        let ask = QuotaAsk {
            user_id,
            reservation: *reservation,
            needed: clamp(needed),
            wanted: clamp(wanted),
            quota: clamp(quota),
            outside: clamp(outside),
            personal_data_store: &self.limits.personal_data_store,
            listed_epoch,
            now_ms,
            expires_ms,
        };
        match self.db.reserve_quota(&ask).await.map_err(quota_db_failed)? {
            Some((id, granted)) => {
                *reservation = Some(id);
                Ok(granted.max(0) as u64)
            }
            None => Err(IngestError::OverQuota { quota }),
        }
    }

    /// Extends a reservation's life, if it has not lapsed; answers whether
    /// it had not.
    async fn renew_reservation(&self, id: i64) -> Result<bool, IngestError> {
        renew_reservation(&self.db, id)
            .await
            .map_err(quota_db_failed)
    }

    /// Lets go of a reservation whose bytes may now be in the user's
    /// personal store: it is marked moved, not deleted, so that a count
    /// whose listing began before the move still counts it (and it expires
    /// shortly after).
    async fn release_into_store(&self, user_id: i64, id: i64) -> Result<(), sqlx::Error> {
        self.db
            .move_reservation_into_store(user_id, id, moved_reservation_expiry_ms())
            .await
    }

    /// The room a resumable upload was promised at its creation, as the
    /// allowance of its final ingest. The reservation stays the caller's,
    /// to let go of when the upload is recorded or refused: it must outlive
    /// an attempt that failed for a passing reason, which the upload's next
    /// request retries within it (its parts are still stored meanwhile).
    pub(super) fn upload_allowance_of(
        &self,
        user_id: Option<i64>,
        reservation: Option<i64>,
        promised: u64,
    ) -> UploadAllowance<'_> {
        UploadAllowance {
            core: self,
            user_id,
            promised: if reservation.is_some() { promised } else { 0 },
            reservation: None,
            at_most: u64::MAX,
            replacing: 0,
            store_copy: false,
        }
    }

    /// What a new upload for this owner may grow to (a record without an
    /// owner, a public one, is held to the upload limit alone).
    pub fn upload_allowance(&self, user_id: Option<i64>) -> UploadAllowance<'_> {
        UploadAllowance {
            core: self,
            user_id,
            reservation: None,
            promised: 0,
            at_most: u64::MAX,
            replacing: 0,
            store_copy: false,
        }
    }
}

/// The room an upload may take: the upload limit, and the user's quota
/// through a reservation. Dropped without [`UploadAllowance::release`] (a
/// cancelled request), it lets go of its reservation in the background.
pub struct UploadAllowance<'a> {
    core: &'a Core,
    user_id: Option<i64>,
    reservation: Option<i64>,
    /// Bytes already reserved (a resumable upload's length): growing
    /// within them asks for nothing, so the reservation never shrinks.
    promised: u64,
    /// What the upload cannot grow past (its request's body length): room
    /// reserved ahead is never more, so that an upload that has said how
    /// long it is leaves the rest of a quota to the uploads beside it.
    at_most: u64,
    /// Bytes that the upload replaces, which count until it takes their
    /// place: only growth past them is reserved.
    replacing: u64,
    /// Whether the bytes become a copy in a personal store (see
    /// [`UploadAllowance::store_copy`]).
    store_copy: bool,
}

impl UploadAllowance<'_> {
    /// Reserves no more than `bytes` ahead, when they are known.
    pub fn at_most(mut self, bytes: Option<u64>) -> Self {
        self.at_most = bytes.unwrap_or(u64::MAX);
        self
    }

    /// Counts `bytes` as already held: those of what the upload replaces
    /// (a package a sync packs again), which count until it takes their place.
    pub fn replacing(mut self, bytes: u64) -> Self {
        self.replacing = bytes;
        self
    }

    /// The bytes become a copy in a personal store (a sync's package),
    /// which a count finds through the store's listing (see
    /// [`Core::personal_store_bytes`]), not the records' sum: the
    /// reservation is moved into the store when let go, as a store write's
    /// is, so that a count whose listing began before the record still
    /// counts it (moving one whose bytes never landed costs nothing).
    pub fn store_copy(mut self) -> Self {
        self.store_copy = true;
        self
    }

    /// The reservation, taken to be let go of in the commit that records
    /// the bytes (see [`Core::attach_blob`]), which also lets go of it if
    /// they are not recorded; `None` for a store copy's, which
    /// [`UploadAllowance::release`] moves into the store instead.
    pub(super) fn take_for_landing(&mut self) -> Option<i64> {
        if self.store_copy {
            return None;
        }
        self.reservation.take()
    }

    /// Lets go of the reservation: the bytes now count as a record, or not at all.
    pub async fn release(mut self) {
        if let Some(let_go) = self.let_go() {
            if let Err(error) = let_go.await {
                tracing::warn!(%error, "cannot release a quota reservation; it will expire");
            }
        }
    }

    /// What lets go of the reservation, if there is one.
    fn let_go(&mut self) -> Option<impl std::future::Future<Output = Result<(), sqlx::Error>>> {
        let id = self.reservation.take()?;
        let db = self.core.db.clone();
        let into_store = self.user_id.filter(|_| self.store_copy);
        Some(async move {
            match into_store {
                Some(user_id) => {
                    db.move_reservation_into_store(user_id, id, moved_reservation_expiry_ms())
                        .await
                }
                None => db.release_quota(id).await,
            }
        })
    }
}

impl Drop for UploadAllowance<'_> {
    fn drop(&mut self) {
        if let Some(let_go) = self.let_go() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(let_go);
            }
        }
    }
}

#[async_trait::async_trait]
impl Allowance for UploadAllowance<'_> {
    async fn grow(&mut self, needed: u64) -> Result<u64, IngestError> {
        let limit = self.core.limits.max_upload_bytes;
        if needed > limit {
            return Err(IngestError::TooLarge { limit });
        }
        let (Some(quota), Some(user_id)) = (self.core.limits.user_quota_bytes, self.user_id) else {
            return Ok(limit);
        };
        if needed <= self.promised {
            return Ok(self.promised);
        }
        if needed <= self.replacing {
            return Ok(self.replacing.min(limit));
        }
        // Never less than `needed`, even past a length the body broke.
        let wanted = needed
            .saturating_add(RESERVATION_STEP)
            .min(limit)
            .min(self.at_most)
            .max(needed);
        let granted = self
            .core
            .reserve(
                user_id,
                quota,
                &mut self.reservation,
                needed - self.replacing,
                wanted - self.replacing,
            )
            .await?;
        Ok(granted.saturating_add(self.replacing))
    }

    async fn hold(&mut self, size: u64) -> Result<(), IngestError> {
        // Only a reservation of this allowance's own can lapse under it (a
        // resumable upload's is its caller's, and lives as long as it).
        let (Some(quota), Some(user_id), Some(id)) = (
            self.core.limits.user_quota_bytes,
            self.user_id,
            self.reservation,
        ) else {
            return Ok(());
        };
        if self.core.renew_reservation(id).await? {
            return Ok(());
        }
        let needed = size.saturating_sub(self.replacing);
        self.core
            .reserve(user_id, quota, &mut self.reservation, needed, needed)
            .await
            .map(|_| ())
    }
}

/// Room for one write into a personal store. Bytes already written are in
/// the store's files, which the quota counts, and the reservation holds only
/// the room granted ahead of them; unless the write is `held` (an object
/// store's, which appears only when complete): then the reservation holds
/// the bytes written too, until [`StoreWrite::release`] after the write.
pub struct StoreWrite {
    core: std::sync::Arc<Core>,
    user_id: i64,
    held: bool,
    reservation: Option<i64>,
    /// Bytes that may still be written without asking again.
    room: u64,
    written: u64,
    /// Whether the write's final step has begun, which may place the file
    /// even if the request is dropped meanwhile.
    placing: bool,
}

impl std::fmt::Debug for StoreWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWrite")
            .field("user_id", &self.user_id)
            .field("room", &self.room)
            .field("written", &self.written)
            .finish()
    }
}

impl StoreWrite {
    pub fn new(core: std::sync::Arc<Core>, user_id: i64, held: bool) -> Self {
        Self {
            core,
            user_id,
            held,
            reservation: None,
            room: 0,
            written: 0,
            placing: false,
        }
    }

    /// Reserves room for a write of `bytes` announced up front (a
    /// `Content-Length`), before anything is written; the bytes written
    /// later use that room instead of asking again.
    pub async fn announce(&mut self, bytes: u64) -> Result<(), IngestError> {
        let limit = self.core.limits.max_upload_bytes;
        if bytes > limit {
            return Err(IngestError::TooLarge { limit });
        }
        if let Some(quota) = self.core.limits.user_quota_bytes {
            if bytes > self.room {
                self.room = self
                    .core
                    .reserve(self.user_id, quota, &mut self.reservation, bytes, bytes)
                    .await?;
            }
        }
        Ok(())
    }

    /// Makes room for `bytes` more bytes of this write, or refuses.
    pub async fn make_room(&mut self, bytes: u64) -> Result<(), IngestError> {
        let limit = self.core.limits.max_upload_bytes;
        let total = self.written.saturating_add(bytes);
        if total > limit {
            return Err(IngestError::TooLarge { limit });
        }
        if let Some(quota) = self.core.limits.user_quota_bytes {
            if bytes > self.room {
                // The room used so far is in the store's files now: it is
                // moved there before new room is asked for, never shrunk
                // in place, so that a count that listed the files before
                // those bytes still counts them.
                if !self.held {
                    if let Some(id) = self.reservation.take() {
                        self.core
                            .release_into_store(self.user_id, id)
                            .await
                            .map_err(quota_db_failed)?;
                    }
                }
                let held = if self.held { self.written } else { 0 };
                let needed = held.saturating_add(bytes);
                let wanted = held.saturating_add(bytes.max(RESERVATION_STEP));
                let granted = self
                    .core
                    .reserve(self.user_id, quota, &mut self.reservation, needed, wanted)
                    .await?;
                self.room = granted.saturating_sub(held);
            }
            self.room -= bytes;
        }
        self.written = total;
        Ok(())
    }

    /// The next of several files written one after another through this
    /// write (the files of a `COPY`, which share its reservation): the
    /// upload limit is each file's. Only for a write whose bytes are in
    /// the store's files as they are written.
    pub fn next_file(&mut self) {
        if !self.held {
            self.written = 0;
        }
    }

    /// Before the final step of a write whose reservation holds its bytes:
    /// makes sure the reservation has not lapsed (a write stalled past its
    /// life, whose room may have gone to others meanwhile), or reserves the
    /// bytes again, or refuses.
    pub async fn hold(&mut self) -> Result<(), IngestError> {
        let (Some(quota), Some(id)) = (self.core.limits.user_quota_bytes, self.reservation) else {
            return Ok(());
        };
        if !self.held || self.core.renew_reservation(id).await? {
            return Ok(());
        }
        let written = self.written;
        self.core
            .reserve(self.user_id, quota, &mut self.reservation, written, written)
            .await?;
        self.room = 0;
        Ok(())
    }

    /// The write's final step begins: from now on it may place its file
    /// even if dropped before it answers.
    pub fn placing(&mut self) {
        self.placing = true;
    }

    /// The final step is done: the bytes are in the store's files, and a
    /// drop lets go of the reservation as [`StoreWrite::release`] does.
    pub fn placed(&mut self) {
        self.placing = false;
    }

    /// What keeps this write's reservation from lapsing while one long step
    /// runs: a copy of a large file can outlast it (through an object
    /// store, one over 5 GiB streams through the server), and past it the
    /// room it holds would count no more, for other writes to take.
    pub fn keeper(&self) -> ReservationKeeper {
        ReservationKeeper::new(&self.core, self.reservation)
    }

    /// Lets go of the reservation (the bytes are in the store's files now).
    pub async fn release(mut self) {
        if let Some(id) = self.reservation.take() {
            if let Err(error) = self.core.release_into_store(self.user_id, id).await {
                tracing::warn!(%error, "cannot release a quota reservation; it will expire");
            }
        }
    }
}

/// A write dropped unfinished has its bytes in the store's files, if any:
/// its reservation is moved, as a finished write's is. One dropped during
/// its final step (a client gone meanwhile) may still place its file later
/// (an object store completing an upload): its reservation keeps counting
/// for every count until it expires.
impl Drop for StoreWrite {
    fn drop(&mut self) {
        if let Some(id) = self.reservation.take() {
            let (core, user_id) = (self.core.clone(), self.user_id);
            let placing = self.placing;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if placing {
                        core.db
                            .hold_reservation(id, moved_reservation_expiry_ms())
                            .await
                    } else {
                        core.release_into_store(user_id, id).await
                    }
                });
            }
        }
    }
}

/// When a reservation moved into the store (or held for a write that may
/// still place its file) stops counting.
fn moved_reservation_expiry_ms() -> i64 {
    Utc::now()
        .timestamp_millis()
        .saturating_add(MOVED_RESERVATION_TTL.as_millis() as i64)
}

/// The bytes of the synced copies that no file backs. A file backs the one
/// copy of it whose recorded source it still shows (see [`Source::file`]).
/// A package (an `.ovf` with its disks) is backed by nothing, nor a copy
/// whose source is not recorded (made before sources were kept, until a
/// sync, queued at start-up, records it).
fn unbacked_bytes(files: &[StoreFile], copies: &[SyncedCopy]) -> u64 {
    let mut files = crate::personal::by_place(files);
    let mut unbacked = 0_u64;
    for copy in copies {
        let Some(size) = copy.size.and_then(|size| u64::try_from(size).ok()) else {
            continue;
        };
        let place = place_in_store(copy);
        let backed = files
            .get(&place)
            .is_some_and(|file| copy.synced_from.as_deref() == Some(Source::file(file).as_str()));
        if backed {
            files.remove(&place);
        } else {
            unbacked = unbacked.saturating_add(size);
        }
    }
    unbacked
}

/// Where a synced copy's file is in its owner's store: folder and name (a
/// copy's folder is its owner's name, then the file's folder).
pub(super) fn place_in_store(copy: &SyncedCopy) -> (&str, &str) {
    let below = copy.folder.split_once('/').map_or("", |(_, below)| below);
    (below, copy.name.as_str())
}

/// The database failed while counting, granting or moving quota.
fn quota_db_failed(error: sqlx::Error) -> IngestError {
    tracing::error!(%error, "cannot keep the quota's books");
    IngestError::Io(std::io::Error::other("the database failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(folder: &str, name: &str, size: u64) -> StoreFile {
        StoreFile {
            relative: if folder.is_empty() {
                name.to_owned()
            } else {
                format!("{folder}/{name}")
            },
            utf8: true,
            folder: folder.to_owned(),
            name: name.to_owned(),
            size,
            modified: Utc::now(),
            tag: None,
        }
    }

    fn copy(folder: &str, name: &str, size: i64, source: Option<&str>) -> SyncedCopy {
        SyncedCopy {
            id: 0,
            owner_id: 1,
            folder: folder.to_owned(),
            name: name.to_owned(),
            size: Some(size),
            sha256: None,
            synced_from: source.map(str::to_owned),
        }
    }

    #[test]
    fn a_copy_counts_unless_its_file_still_shows_its_source() {
        let a = file("", "a.iso", 100);
        let b = file("cds/old", "b.iso", 200);
        // What the copy of b was made of: a file of its size, written earlier.
        let mut earlier = b.clone();
        earlier.modified -= chrono::Duration::seconds(1);
        let files = [a.clone(), b.clone()];
        let (a_source, b_source) = (Source::file(&a), Source::file(&b));
        let backed = [
            copy("alice", "a.iso", 100, Some(a_source.as_str())),
            copy("alice/cds/old", "b.iso", 200, Some(b_source.as_str())),
        ];
        assert_eq!(unbacked_bytes(&files, &backed), 0);
        assert_eq!(unbacked_bytes(&[], &backed), 300);
        let unbacked = [
            // The file was replaced by one of the same size.
            copy(
                "alice/cds/old",
                "b.iso",
                200,
                Some(Source::file(&earlier).as_str()),
            ),
            // Another place, a file gone, an `.ovf`'s package.
            copy("alice/cds", "b.iso", 200, Some(b_source.as_str())),
            copy("alice", "gone.iso", 30, Some(a_source.as_str())),
            copy("alice", "a.iso", 100, Some("ovf:0123")),
        ];
        assert_eq!(unbacked_bytes(&files, &unbacked), 200 + 200 + 30 + 100);
        // One file backs one copy, however many claim it.
        let twice = [backed[0].clone(), backed[0].clone()];
        assert_eq!(unbacked_bytes(&files, &twice), 100);
        // A file whose name is not UTF-8 backs nothing (its name is lossy).
        let mut lossy = a.clone();
        lossy.utf8 = false;
        assert_eq!(unbacked_bytes(&[lossy], &backed[..1]), 100);
    }

    #[test]
    fn a_copy_from_before_sources_were_kept_counts_on_its_own() {
        let files = [file("", "a.iso", 100)];
        let legacy = copy("alice", "a.iso", 100, None);
        assert_eq!(unbacked_bytes(&files, &[legacy]), 100);
    }
}
