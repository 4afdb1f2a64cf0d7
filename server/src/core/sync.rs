//! Syncing a personal store: the user's files become their images. `.ova`
//! and `.ovf` files (with every disk the descriptor names) become VM images,
//! `.iso` files ISO images; changed files update their record, vanished ones
//! lose it. A problem with one file is reported in the request, not fatal.

use std::collections::HashMap;

use app::error::CoreError;
use app::model::{image_path, DiskFormat, Image, ImageKind, ImageName, Principal, Viewer};
use app::query::{Condition, Field, Op, Query, Value, MAX_PAGE};
use chrono::{DateTime, Utc};
use rand::RngCore;

use super::blobs::{Attach, Landing};
use super::inspect::{self, Inspection};
use super::{db_error, Core};
use crate::blob::{ByteStream, Limit};
use crate::personal::StoreFile;
use crate::store::{NewImage, SyncOutcome, SyncRow};

mod ovf;
mod reconfirm;

use ovf::OvfPackage;

/// The job kind that runs a sync request.
pub const SYNC_JOB: &str = "vss.image_sync";

/// How many of a user's sync requests are kept: the ended ones older than
/// the newest this many are forgotten as new ones come.
const SYNC_REQUESTS_KEPT: i64 = 1000;

/// Which files a sync looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// `.ova` and `.ovf` files: VM images.
    Vm,
    /// `.iso` files.
    Iso,
}

impl SyncKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vm => "VM",
            Self::Iso => "ISO",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "VM" => Some(Self::Vm),
            "ISO" => Some(Self::Iso),
            _ => None,
        }
    }

    fn image_kind(self) -> ImageKind {
        match self {
            Self::Vm => ImageKind::Vm,
            Self::Iso => ImageKind::Iso,
        }
    }

    fn wants(self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        match self {
            Self::Vm => lower.ends_with(".ova") || lower.ends_with(".ovf"),
            Self::Iso => lower.ends_with(".iso"),
        }
    }
}

/// A sync request as the dialects show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRequest {
    pub id: i64,
    pub username: String,
    pub kind: String,
    pub status: String,
    pub task_id: String,
    pub added: i64,
    pub updated: i64,
    pub deleted: i64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<SyncRow> for SyncRequest {
    type Error = CoreError;

    fn try_from(row: SyncRow) -> Result<Self, CoreError> {
        let list = |text: &str| {
            serde_json::from_str::<Vec<String>>(text).map_err(|_| {
                tracing::error!(request = row.id, "unreadable messages in sync_requests");
                CoreError::Internal
            })
        };
        Ok(Self {
            errors: list(&row.errors)?,
            warnings: list(&row.warnings)?,
            id: row.id,
            username: row.username,
            kind: row.kind,
            status: row.status,
            task_id: row.task_id,
            added: row.added,
            updated: row.updated,
            deleted: row.deleted,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// What a synced image is a copy of, as the sync that made it saw it, kept
/// with the image (`images.synced_from`): a sync that sees the same again
/// copies nothing, and the quota counts a file's copy as the file only
/// while the file still shows it (else as bytes of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source(String);

impl Source {
    /// A file copied as it is: its size and modification time (and its
    /// tag, where the store has one).
    pub fn file(file: &StoreFile) -> Self {
        let modified = file.modified.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let tag = file.tag.as_deref().unwrap_or_default();
        Self(format!("file:{}:{modified}:{tag}", file.size))
    }

    /// An `.ovf` packed with its disks (`digest`: see [`OvfPackage::source`]).
    fn package(digest: &str) -> Self {
        Self(format!("ovf:{digest}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a sync copies of one file.
enum Copying {
    /// The file as it is.
    File,
    /// An `.ovf` with the disks it names, packed as one archive.
    Package(OvfPackage),
}

/// A random id in the UUID v4 shape, as VSS shows task ids.
fn task_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Core {
    /// Submits a sync of the caller's store; the job queue runs it.
    pub async fn submit_sync(
        &self,
        viewer: &Viewer,
        kind: SyncKind,
    ) -> Result<SyncRequest, CoreError> {
        let user = viewer.require_user()?;
        // A request that has not started yet will see the store as it is
        // when it runs: a second one would only race it.
        let (id, new) = self
            .db
            .submit_sync_request(
                user.id,
                kind.as_str(),
                &task_id(),
                SYNC_JOB,
                Utc::now(),
                SYNC_REQUESTS_KEPT,
            )
            .await
            .map_err(db_error)?;
        let mut request = self.sync_request(viewer, id).await?;
        if new {
            // The answer tells what was submitted, even if a polling worker
            // has already picked it up.
            request.status = "SUBMITTED".into();
        }
        self.jobs_waiting.notify_one();
        Ok(request)
    }

    /// A sync request its owner (or an admin) may see.
    pub async fn sync_request(&self, viewer: &Viewer, id: i64) -> Result<SyncRequest, CoreError> {
        let user = viewer.require_user()?;
        match self.db.sync_request(id).await.map_err(db_error)? {
            Some(row) if row.user_id == user.id || viewer.is_admin() => row.try_into(),
            _ => Err(CoreError::not_found(format!("image sync request {id}"))),
        }
    }

    /// One page of the caller's sync requests, newest first.
    pub async fn list_sync_requests(
        &self,
        viewer: &Viewer,
        status: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<SyncRequest>, u64), CoreError> {
        let user = viewer.require_user()?;
        let (rows, total) = self
            .db
            .sync_requests_of(user.id, status, limit.clamp(1, MAX_PAGE), offset)
            .await
            .map_err(db_error)?;
        let items = rows
            .into_iter()
            .map(SyncRequest::try_from)
            .collect::<Result<_, _>>()?;
        Ok((items, total.max(0) as u64))
    }

    /// The job: reconciles the store with the user's images and records
    /// what it did. An error here is the job's (it is retried).
    pub(crate) async fn run_sync(&self, request_id: i64) -> Result<(), String> {
        // Database details go to the log; the request shows a plain reason.
        let unavailable = |error: sqlx::Error| {
            tracing::error!(%error, "database error during a sync");
            "the database was unavailable".to_owned()
        };
        let row = self
            .db
            .sync_request(request_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| format!("sync request {request_id} is gone"))?;
        let kind = SyncKind::parse(&row.kind).ok_or("unknown sync kind")?;
        let user = self
            .db
            .user_by_id(row.user_id)
            .await
            .map_err(unavailable)?
            .ok_or("the user is gone")?
            .principal()
            .map_err(|error| error.to_string())?;
        self.db
            .set_sync_status(request_id, "IN_PROGRESS", Utc::now())
            .await
            .map_err(unavailable)?;
        let outcome = self.reconcile(&user, kind).await?;
        self.db
            .finish_sync_request(request_id, &outcome, Utc::now())
            .await
            .map_err(unavailable)
    }

    /// The user's images that came from their store, by `folder/name`.
    async fn synced_images(
        &self,
        viewer: &Viewer,
        user: &Principal,
        kind: SyncKind,
    ) -> Result<HashMap<(String, String), Image>, CoreError> {
        let scope = Condition::All(vec![
            Condition::Compare {
                field: Field::OwnerId,
                op: Op::Eq,
                value: Value::Int(user.id),
            },
            Condition::Compare {
                field: Field::Kind,
                op: Op::Eq,
                value: Value::Text(kind.image_kind().as_str().into()),
            },
            Condition::Compare {
                field: Field::DataStore,
                op: Op::Eq,
                value: Value::Text(self.limits.personal_data_store.clone()),
            },
        ]);
        let mut images = HashMap::new();
        let mut offset = 0;
        loop {
            let query = Query::new(MAX_PAGE).filter(scope.clone()).offset(offset);
            let page = self.list_images(viewer, query).await?;
            let count = page.items.len() as u64;
            for image in page.items {
                images.insert((image.folder.clone(), image.name.clone()), image);
            }
            offset += count;
            if count == 0 || offset >= page.total {
                return Ok(images);
            }
        }
    }

    async fn reconcile(&self, user: &Principal, kind: SyncKind) -> Result<SyncOutcome, String> {
        let viewer = Viewer::User(user.clone());
        let files = self.personal.files(user.id).await.map_err(|error| {
            tracing::warn!(%error, "cannot list a personal store for a sync");
            "cannot read the store just now".to_owned()
        })?;
        let mut known = self
            .synced_images(&viewer, user, kind)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot list the synced images");
                "the catalog was unavailable".to_owned()
            })?;
        // A store that is not there (an unmounted volume, another server's
        // data folder) is not an empty one: never delete on its word.
        let files = match files {
            Some(files) => files,
            None if known.is_empty() => Vec::new(),
            None => return Err("the personal store's folder is missing on this server".into()),
        };
        // What each copy was made of, to tell whether its file changed.
        let sources: HashMap<i64, Option<String>> = self
            .db
            .synced_copies(user.id, &self.limits.personal_data_store)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot list the synced copies");
                "the catalog was unavailable".to_owned()
            })?
            .into_iter()
            .map(|copy| (copy.id, copy.synced_from))
            .collect();
        // The files a descriptor may name.
        let present = crate::personal::by_place(&files);
        let mut outcome = SyncOutcome::default();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut over_count: Option<OverCount> = None;

        for file in files.iter().filter(|file| kind.wants(&file.name)) {
            let shown = if file.folder.is_empty() {
                file.name.clone()
            } else {
                format!("{}/{}", file.folder, file.name)
            };
            // Each part must be a usable name as it is (not merely after cleaning).
            let usable =
                |part: &str| ImageName::parse(part).is_ok_and(|name| name.as_str() == part);
            let valid_folder = file
                .folder
                .split('/')
                .all(|part| part.is_empty() || usable(part));
            if !file.utf8 || !valid_folder || !usable(&file.name) {
                errors.push(format!(
                    "{shown}: the name is not usable (control characters, quotes or not UTF-8)"
                ));
                continue;
            }
            let folder = if file.folder.is_empty() {
                user.username.clone()
            } else {
                format!("{}/{}", user.username, file.folder)
            };
            // The file is there: its record stays, whatever is wrong with it now.
            let existing = known.remove(&(folder.clone(), file.name.clone()));
            // An `.ovf` is kept with its disks: one package (an OVA),
            // inspected and downloadable whole; any other file as it is.
            let copy = if file.name.to_ascii_lowercase().ends_with(".ovf") {
                match self.read_package(user, file, &present).await {
                    Ok(package) if package.missing.is_empty() => Copying::Package(package),
                    Ok(package) => {
                        // A few named: a descriptor may name a thousand.
                        const SHOWN: usize = 5;
                        let mut missing =
                            package.missing[..package.missing.len().min(SHOWN)].join(", ");
                        if package.missing.len() > SHOWN {
                            missing += &format!(" and {} more", package.missing.len() - SHOWN);
                        }
                        errors.push(format!("{shown}: missing disk {missing}"));
                        continue;
                    }
                    Err(error) => {
                        errors.push(format!("{shown}: {error}"));
                        continue;
                    }
                }
            } else {
                Copying::File
            };
            let source = match &copy {
                Copying::File => Source::file(file),
                Copying::Package(package) => package.source(file),
            };
            // A copy whose source is not recorded (made before sources were
            // kept) is read again: to the same bytes, that records it.
            let recorded = existing
                .as_ref()
                .and_then(|image| sources.get(&image.id))
                .and_then(Option::as_deref);
            if recorded == Some(source.as_str()) {
                continue;
            }
            // A new record past the most the user may own: refused before
            // its bytes are copied; after one, the rest of the sync's new
            // files are counted, not each asked about and reported.
            if existing.is_none() {
                if let Some(over) = &mut over_count {
                    over.skipped += 1;
                    continue;
                }
                if let Err(error) = self.check_room_for_image(user).await {
                    over_count = Some(OverCount {
                        first: shown.to_string(),
                        skipped: 1,
                        error,
                    });
                    continue;
                }
            }
            match self
                .register(user, kind, file, copy, &source, &folder, existing.as_ref())
                .await
            {
                Ok(Registered::Added) => outcome.added += 1,
                Ok(Registered::Updated) => outcome.updated += 1,
                Ok(Registered::Same) => {}
                Err(error) => errors.push(format!("{shown}: {error}")),
            }
        }
        // Records whose file is gone.
        for image in known.into_values() {
            match self.delete_image(&viewer, image.id).await {
                Ok(()) => outcome.deleted += 1,
                Err(error) => warnings.push(format!("{}: cannot remove: {error}", image.name)),
            }
        }
        if let Some(OverCount {
            first,
            skipped,
            error,
        }) = over_count
        {
            errors.push(format!(
                "{skipped} new file(s) not added, {first} first: {error}"
            ));
        }
        outcome.status = "PROCESSED";
        outcome.errors = serde_json::to_string(&errors).unwrap_or_else(|_| "[]".into());
        outcome.warnings = serde_json::to_string(&warnings).unwrap_or_else(|_| "[]".into());
        Ok(outcome)
    }

    /// Copies a file's bytes (or an `.ovf`'s package) into the blob store
    /// and records or updates its image.
    #[allow(clippy::too_many_arguments)]
    async fn register(
        &self,
        user: &Principal,
        kind: SyncKind,
        file: &StoreFile,
        copy: Copying,
        source: &Source,
        folder: &str,
        existing: Option<&Image>,
    ) -> Result<Registered, CoreError> {
        // A copy of the file as it is counts as the file, which the quota
        // already counts, so only the upload limit applies. A package is
        // bytes of its own, counted as an upload's (else one disk named by
        // many descriptors would be stored many times over, uncounted);
        // one that replaces an older package needs room only to grow, the
        // older counting until the newer takes its place.
        let (stream, mut counted): (ByteStream, _) = match copy {
            Copying::File => {
                let stream = read_store_file(&*self.personal, user.id, &file.relative)
                    .await
                    .map_err(|error| CoreError::invalid(format!("unreadable: {error}")))?;
                (as_listed(stream, file.size), None)
            }
            Copying::Package(package) => {
                let replaced = existing.and_then(|image| image.size).unwrap_or(0);
                let allowance = self
                    .upload_allowance(Some(user.id))
                    .store_copy()
                    .replacing(u64::try_from(replaced).unwrap_or(0))
                    .at_most(Some(package.size_bound(&file.name)));
                (self.package_ovf(user, &file.name, package), Some(allowance))
            }
        };
        let mut uncounted = Limit(self.limits.max_upload_bytes);
        let allowance: &mut dyn crate::blob::Allowance = match &mut counted {
            Some(counted) => counted,
            None => &mut uncounted,
        };
        let registered = self
            .record_copy(
                user, kind, file, stream, allowance, source, folder, existing,
            )
            .await;
        // A package's reservation goes once it is recorded or refused (not
        // in the background, where a count could still see it).
        if let Some(counted) = counted {
            counted.release().await;
        }
        registered
    }

    /// Ingests a copy's bytes, inspects them and records them as the
    /// file's image, new or updated.
    #[allow(clippy::too_many_arguments)]
    async fn record_copy(
        &self,
        user: &Principal,
        kind: SyncKind,
        file: &StoreFile,
        stream: ByteStream,
        allowance: &mut dyn crate::blob::Allowance,
        source: &Source,
        folder: &str,
        existing: Option<&Image>,
    ) -> Result<Registered, CoreError> {
        let (staged, inspection) = self
            .blobs
            .ingest(stream, allowance, |reader| inspect::inspect(reader))
            .await
            .map_err(super::images::ingest_error)?;
        let inspection = inspection.map_err(Inspection::refused)?;
        let fits = match kind {
            SyncKind::Vm => matches!(inspection.format, DiskFormat::Ova | DiskFormat::Ovf),
            SyncKind::Iso => inspection.format == DiskFormat::Iso,
        };
        if !fits {
            return Err(CoreError::invalid(format!(
                "its bytes are {}, not what the name says",
                inspection.format.as_str()
            )));
        }
        let now = Utc::now();
        match existing {
            Some(image) if image.sha256.as_deref() == Some(staged.sha256.as_str()) => {
                self.db
                    .set_synced_from(image.id, source.as_str(), &staged.sha256)
                    .await
                    .map_err(db_error)?;
                Ok(Registered::Same)
            }
            Some(image) => {
                // A published copy keeps the bytes an administrator approved.
                super::images::published_stays(&Viewer::User(user.clone()), image)?;
                let old = image.sha256.clone();
                let replace = Attach::Replace {
                    id: image.id,
                    replaces: image.sha256.as_deref(),
                    by_admin: user.role == app::model::Role::Admin,
                    inspection: &inspection,
                    now,
                };
                // The copy's room, if it takes any, is a store copy's:
                // moved into the store when let go, not deleted here.
                self.attach_blob(staged, replace, Landing::SyncedFrom(source.as_str()), None)
                    .await?;
                if let Some(old) = old {
                    self.release_blob(&old).await;
                }
                Ok(Registered::Updated)
            }
            None => {
                let data_store = self.limits.personal_data_store.clone();
                let new = NewImage {
                    kind: kind.image_kind().as_str(),
                    name: file.name.clone(),
                    label: file.name.clone(),
                    path: image_path(&data_store, folder, &file.name),
                    folder: folder.to_owned(),
                    data_store,
                    public: false,
                    owner_id: Some(user.id),
                    owner_images_at_most: self.images_at_most(user),
                    size: Some(staged.size as i64),
                    sha256: Some(staged.sha256.clone()),
                    format: Some(inspection.format.as_str()),
                    virtual_size: inspection.virtual_size,
                    now,
                    provisioning: None,
                    virtualized: Vec::new(),
                    vice: None,
                    inspection: inspection.attributes(),
                    guest_os: inspection.guest_os().map(str::to_owned),
                };
                self.attach_blob(
                    staged,
                    Attach::Insert(&new),
                    Landing::SyncedFrom(source.as_str()),
                    None,
                )
                .await?;
                Ok(Registered::Added)
            }
        }
    }
}

/// New files a sync did not add, its user owning as many images as they
/// may: the first, how many, and why.
struct OverCount {
    first: String,
    skipped: usize,
    error: CoreError,
}

/// What registering one file did.
enum Registered {
    Added,
    Updated,
    Same,
}

/// A store file's bytes, for a sync. What the store says of a failure goes
/// to the log alone: an object store's errors name its endpoint, bucket and
/// keys, and a sync's errors are shown to the store's owner.
pub(super) async fn read_store_file(
    personal: &dyn crate::personal::PersonalStores,
    user_id: i64,
    relative: &str,
) -> std::io::Result<ByteStream> {
    use futures_util::{StreamExt, TryStreamExt};
    let stream = personal.read(user_id, relative).await.map_err(unreadable)?;
    Ok(stream.map_err(unreadable).boxed())
}

/// A file's bytes as its listing had them, or a failure: a copy counted as
/// its file (no quota of its own) must be the file the quota counts, not
/// one written over it since, larger, between the listing and the read.
/// (The copy is recorded with the listing's source, so the next sync
/// copies the file again whatever changed.)
fn as_listed(stream: ByteStream, size: u64) -> ByteStream {
    use futures_util::StreamExt;
    let changed = || std::io::Error::other("the file changed while it was copied");
    futures_util::stream::unfold(
        (stream, 0u64, false),
        move |(mut stream, read, ended)| async move {
            if ended {
                return None;
            }
            let (next, ended, read) = match stream.next().await {
                Some(Ok(chunk)) => {
                    let read = read.saturating_add(chunk.len() as u64);
                    let past = read > size;
                    (if past { Err(changed()) } else { Ok(chunk) }, past, read)
                }
                Some(Err(error)) => (Err(error), true, read),
                None if read != size => (Err(changed()), true, read),
                None => return None,
            };
            Some((next, (stream, read, ended)))
        },
    )
    .boxed()
}

fn unreadable(error: std::io::Error) -> std::io::Error {
    tracing::warn!(%error, "cannot read a file of a personal store for a sync");
    std::io::Error::other("the file changed or could not be read")
}

#[cfg(test)]
mod tests;
