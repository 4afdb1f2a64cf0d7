//! The domain core: every rule about who may do what, and every write, in one
//! place. The UI (through [`app::ports::Catalog`]) and each REST dialect call
//! it; none of them talks to the store directly.

mod access_token;
mod auth;
mod blobs;
mod coopr;
pub(crate) mod demo;
mod deployments;
mod environments;
mod export;
mod image_cap;
mod images;
mod inspect;
mod jobs;
mod keys;
pub mod login_guard;
mod patterns;
mod personal_store;
mod provisioning;
mod query_bounds;
mod quota;
mod renewing;
mod resumable;
mod store_entries;
mod sync;
mod tenants;
mod upload_shares;
mod users;
mod vice;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use app::error::CoreError;
use tokio::sync::Notify;

use crate::blob::BlobStore;
use crate::personal::PersonalStores;
use crate::store::Db;
use login_guard::{LoginGuard, LoginLimits};

pub use auth::{IssuedToken, PasswordCost, TokenInfo};
pub use auth::{MAX_PASSWORD_LEN, TOKEN_TTL};
pub use blobs::Collected;
pub use coopr::{IssuedKey, TenantCaller};
pub use images::UploadMeta;
#[cfg(test)]
pub use jobs::PANICKING_JOB;
pub use keys::ServerKey;
pub use quota::{ReservationKeeper, StoreWrite, UploadAllowance, RESERVATION_RENEWED_EVERY};
pub use resumable::{
    AppendError, Appended, Checksum, Resumable, ResumableMeta, MAX_OPEN_UPLOADS, UPLOAD_LIFETIME,
};
pub use store_entries::{
    check_store_depth, Admission, EntryRefused, MovesSeen, Moving, NewEntry, MAX_STORE_DEPTH,
};
pub use sync::{SyncKind, SyncRequest};
pub use upload_shares::SharePlace;

/// The largest single upload unless the operator says otherwise: 1 TiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 40;

/// The most files and folders one personal store may hold unless the
/// operator says otherwise.
pub const DEFAULT_MAX_STORE_ENTRIES: u64 = 10_000;

/// The most images one account may own unless the operator says otherwise.
pub const DEFAULT_MAX_USER_IMAGES: u64 = 10_000;

/// The data store name shown in paths unless the operator says otherwise.
pub const DEFAULT_DATA_STORE: &str = "depot";

/// The data store name of synced personal-store images unless the operator says otherwise.
pub const DEFAULT_PERSONAL_DATA_STORE: &str = "personal";

/// Limits an operator can set.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest single upload, in bytes.
    pub max_upload_bytes: u64,
    /// The most bytes one user's images may hold, if limited.
    pub user_quota_bytes: Option<u64>,
    /// The most files and folders one user's personal store may hold.
    pub max_store_entries: u64,
    /// The most images one account but an administrator's may own.
    pub max_user_images: u64,
    /// The data store name shown in image paths (`[data_store] folder/name`).
    pub data_store: String,
    /// The data store name of images synced from personal stores.
    pub personal_data_store: String,
    /// The folder under which `file://` environments may be deployed to.
    pub export_root: Option<PathBuf>,
    /// How fast password checks may be repeated per client and per account.
    pub login: LoginLimits,
    /// What each new password hash costs (not an operator's setting: see
    /// [`PasswordCost::least`]).
    pub password_cost: PasswordCost,
    /// How often a write's step that could outlast its quota reservation
    /// renews it (not an operator's setting: tests shorten it).
    pub reservations_renewed_every: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            user_quota_bytes: None,
            max_store_entries: DEFAULT_MAX_STORE_ENTRIES,
            max_user_images: DEFAULT_MAX_USER_IMAGES,
            data_store: DEFAULT_DATA_STORE.into(),
            personal_data_store: DEFAULT_PERSONAL_DATA_STORE.into(),
            export_root: None,
            login: LoginLimits::default(),
            password_cost: PasswordCost::default(),
            reservations_renewed_every: RESERVATION_RENEWED_EVERY,
        }
    }
}

/// See [`Core::figures`].
#[derive(Debug, Clone)]
pub struct Figures {
    pub jobs: Vec<crate::store::JobCount>,
    pub stored_bytes: u64,
    pub receiving: usize,
    pub kept: crate::store::KeptCatalog,
    /// Walks of personal stores to count their files and folders.
    pub store_walks: u64,
}

/// The core, shared by every request.
pub struct Core {
    db: Db,
    blobs: BlobStore,
    limits: Limits,
    /// Signs and checks access tokens (JWTs).
    token_key: access_token::AccessTokenKey,
    /// Encrypts stored environment credentials.
    credentials_key: [u8; 32],
    /// Where each user's personal store keeps its files.
    personal: Arc<dyn PersonalStores>,
    /// Bounds, throttles and caches password checks.
    login_guard: LoginGuard,
    /// Wakes this process's job workers when it queues a job.
    jobs_waiting: Notify,
    /// The resumable uploads this process ingests as their chunks arrive.
    live: resumable::LiveIngests,
    writers: resumable::Writers,
    /// How many job workers this process runs (for runtime statistics).
    job_workers: std::sync::atomic::AtomicUsize,
    /// How many files and folders each personal store holds, as admitted.
    store_entries: store_entries::EntryCounts,
    /// Each user's share of the upload places.
    upload_shares: upload_shares::UploadShares,
    /// A fingerprint of the secret key (derived one-way from it): whether
    /// this server's key is the one the database is served with.
    key_fingerprint: String,
    /// How far this server's clock is set off the system's, for tests of
    /// servers whose clocks disagree.
    clock_skew_ms: std::sync::atomic::AtomicI64,
    /// The last readiness answer, and when it was found.
    readiness_kept: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), &'static str>)>>,
}

/// How long a readiness answer is kept.
const READINESS_KEPT: std::time::Duration = std::time::Duration::from_secs(2);

impl Core {
    pub fn new(
        db: Db,
        blobs: BlobStore,
        limits: Limits,
        key: &ServerKey,
        personal: Arc<dyn PersonalStores>,
    ) -> Self {
        let login_guard = LoginGuard::new(limits.login, key.derive("depot credential cache v1"));
        Self {
            login_guard,
            db,
            blobs,
            limits,
            token_key: access_token::AccessTokenKey::new(&key.derive("depot access tokens v1")),
            credentials_key: key.derive("depot environment credentials v1"),
            personal,
            jobs_waiting: Notify::new(),
            live: resumable::LiveIngests::default(),
            writers: resumable::Writers::default(),
            job_workers: std::sync::atomic::AtomicUsize::new(0),
            store_entries: store_entries::EntryCounts::default(),
            upload_shares: upload_shares::UploadShares::default(),
            key_fingerprint: hex::encode(key.derive("depot key fingerprint v1")),
            clock_skew_ms: std::sync::atomic::AtomicI64::new(0),
            readiness_kept: tokio::sync::Mutex::new(None),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A fingerprint of the server's secret key, derived one-way from it.
    pub fn key_fingerprint(&self) -> &str {
        &self.key_fingerprint
    }

    /// The fingerprint of another key the database is served with, if it
    /// is (none recorded: nothing disagrees; a server records its key as
    /// it starts).
    pub async fn another_key(&self) -> Result<Option<String>, sqlx::Error> {
        Ok(self
            .db
            .recorded_key_fingerprint()
            .await?
            .filter(|recorded| *recorded != self.key_fingerprint))
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The personal stores' files.
    pub fn personal(&self) -> &dyn PersonalStores {
        self.personal.as_ref()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// One of `user`'s upload places (see [`upload_shares`]), for a write
    /// into their personal store, or 429 if they hold them all.
    pub fn store_write_place(&self, user: i64) -> Result<SharePlace, CoreError> {
        self.upload_shares.take(user)
    }

    /// The password checks' throttles and cache.
    pub fn login_guard(&self) -> &LoginGuard {
        &self.login_guard
    }
}

/// Logs a database failure and hides it from the caller; but text that
/// PostgreSQL cannot hold (a NUL character), whatever field it came in, is
/// the caller's error, not a failure of the server's.
pub(crate) fn db_error(error: sqlx::Error) -> CoreError {
    const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
    if error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == CHARACTER_NOT_IN_REPERTOIRE)
    {
        return CoreError::invalid("text may not hold a NUL character");
    }
    tracing::error!(%error, "database error");
    CoreError::Internal
}

impl Core {
    /// What an operator's metrics show of the deployment, read now: the
    /// job queue by kind and state, the bytes the blob store holds, and the
    /// bodies streaming into it on this server.
    pub async fn figures(&self) -> Result<Figures, CoreError> {
        let jobs = self.db.job_counts().await.map_err(db_error)?;
        let stored_bytes = self.db.stored_bytes().await.map_err(db_error)?;
        Ok(Figures {
            jobs,
            stored_bytes: stored_bytes.max(0) as u64,
            receiving: self.blobs.receiving(),
            kept: self.db.kept_figures(),
            store_walks: self.store_walks(),
        })
    }

    /// Whether this server can serve: the database answers and the blob
    /// store takes a write, each within two seconds. The answer names what
    /// failed, never how (that goes to the log). It is kept for
    /// [`READINESS_KEPT`], and one check runs at a time (the others wait for
    /// its answer): anyone may ask, as often as they like, and each check
    /// writes to the blob store (a PUT and a DELETE in an object store).
    pub async fn readiness(&self) -> Result<(), &'static str> {
        let mut kept = self.readiness_kept.lock().await;
        if let Some((at, answer)) = *kept {
            if at.elapsed() < READINESS_KEPT {
                return answer;
            }
        }
        let answer = self.check_readiness().await;
        *kept = Some((std::time::Instant::now(), answer));
        answer
    }

    async fn check_readiness(&self) -> Result<(), &'static str> {
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
        match tokio::time::timeout(PATIENCE, self.db.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "not ready: the database does not answer");
                return Err("the database does not answer");
            }
            Err(_) => {
                tracing::warn!("not ready: the database is too slow to answer");
                return Err("the database does not answer");
            }
        }
        // A server started with another key since (adopting it) serves the
        // database now: this one's tokens and sealed passwords are not its.
        match tokio::time::timeout(PATIENCE, self.another_key()).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(_))) => {
                tracing::error!("not ready: the database is served with another secret key");
                return Err("the database is served with another secret key");
            }
            Ok(Err(_)) | Err(_) => return Err("the database does not answer"),
        }
        match tokio::time::timeout(PATIENCE, self.blobs.check_writable()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                tracing::warn!(%error, "not ready: the blob store takes no writes");
                Err("the blob store takes no writes")
            }
            Err(_) => {
                tracing::warn!("not ready: the blob store is too slow");
                Err("the blob store takes no writes")
            }
        }
    }
}

/// Logs a storage failure and hides it from the caller.
pub fn io_error(error: std::io::Error) -> CoreError {
    tracing::error!(%error, "storage error");
    CoreError::Internal
}

#[async_trait::async_trait]
impl app::ports::Catalog for Core {
    async fn list_images(
        &self,
        viewer: &app::model::Viewer,
        query: app::query::Query,
    ) -> Result<app::model::ImagePage, CoreError> {
        Core::list_images(self, viewer, query).await
    }

    async fn get_image(
        &self,
        viewer: &app::model::Viewer,
        id: i64,
    ) -> Result<app::model::Image, CoreError> {
        Core::get_image(self, viewer, id).await
    }

    async fn login(
        &self,
        username: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<app::model::Principal, CoreError> {
        Core::sign_in(self, username, password, client).await
    }

    async fn revoke_session_tokens(&self, session: &str) -> Result<(), CoreError> {
        Core::revoke_session_tokens(self, session).await
    }

    async fn list_tokens(
        &self,
        viewer: &app::model::Viewer,
    ) -> Result<Vec<app::model::TokenInfo>, CoreError> {
        Core::list_tokens(self, viewer).await
    }

    async fn create_token(
        &self,
        viewer: &app::model::Viewer,
        session: Option<&str>,
    ) -> Result<app::model::NewToken, CoreError> {
        let user = viewer.require_user()?;
        let issued = Core::issue_token(self, user, session).await?;
        Ok(app::model::NewToken {
            id: issued.id,
            token: issued.token,
            expires_at: issued.expires_at,
        })
    }

    async fn revoke_token(&self, viewer: &app::model::Viewer, id: i64) -> Result<(), CoreError> {
        Core::revoke_token_id(self, viewer, id).await
    }

    async fn delete_image(&self, viewer: &app::model::Viewer, id: i64) -> Result<(), CoreError> {
        Core::delete_image(self, viewer, id).await
    }

    async fn edit_image(
        &self,
        viewer: &app::model::Viewer,
        id: i64,
        edit: app::model::ImageEdit,
    ) -> Result<app::model::Image, CoreError> {
        Core::edit_image(self, viewer, id, edit).await
    }

    async fn list_store(
        &self,
        viewer: &app::model::Viewer,
        path: &str,
    ) -> Result<app::model::StoreListing, CoreError> {
        Core::list_store(self, viewer, path).await
    }

    async fn make_store_folder(
        &self,
        viewer: &app::model::Viewer,
        path: &str,
        name: &str,
    ) -> Result<(), CoreError> {
        Core::make_store_folder(self, viewer, path, name).await
    }

    async fn delete_store_entry(
        &self,
        viewer: &app::model::Viewer,
        path: &str,
    ) -> Result<(), CoreError> {
        Core::delete_store_entry(self, viewer, path).await
    }

    async fn sync_store(
        &self,
        viewer: &app::model::Viewer,
        kind: &str,
    ) -> Result<app::model::SyncInfo, CoreError> {
        Core::sync_store(self, viewer, kind).await
    }

    async fn recent_syncs(
        &self,
        viewer: &app::model::Viewer,
    ) -> Result<Vec<app::model::SyncInfo>, CoreError> {
        Core::recent_syncs(self, viewer, 10).await
    }

    async fn list_api_keys(
        &self,
        viewer: &app::model::Viewer,
    ) -> Result<app::model::ApiKeys, CoreError> {
        Core::own_api_keys(self, viewer).await
    }

    async fn create_api_key(
        &self,
        viewer: &app::model::Viewer,
        tenant: &str,
    ) -> Result<app::model::NewApiKey, CoreError> {
        Core::issue_own_api_key(self, viewer, tenant).await
    }

    async fn revoke_api_key(&self, viewer: &app::model::Viewer, id: i64) -> Result<(), CoreError> {
        Core::revoke_own_api_key(self, viewer, id).await
    }

    async fn tenants(
        &self,
        viewer: &app::model::Viewer,
    ) -> Result<Vec<app::model::TenantInfo>, CoreError> {
        Core::tenants(self, viewer).await
    }

    async fn create_tenant(
        &self,
        viewer: &app::model::Viewer,
        name: &str,
    ) -> Result<(), CoreError> {
        Core::create_tenant(self, viewer, name).await
    }

    async fn delete_tenant(
        &self,
        viewer: &app::model::Viewer,
        name: &str,
    ) -> Result<(), CoreError> {
        Core::delete_tenant(self, viewer, name).await
    }

    async fn add_tenant_member(
        &self,
        viewer: &app::model::Viewer,
        tenant: &str,
        username: &str,
    ) -> Result<(), CoreError> {
        Core::add_tenant_member(self, viewer, tenant, username).await
    }

    async fn remove_tenant_member(
        &self,
        viewer: &app::model::Viewer,
        tenant: &str,
        username: &str,
    ) -> Result<(), CoreError> {
        Core::remove_tenant_member(self, viewer, tenant, username).await
    }

    async fn tenant_image_types(
        &self,
        viewer: &app::model::Viewer,
        tenant: &str,
    ) -> Result<Vec<app::model::ImageType>, CoreError> {
        Core::tenant_image_types(self, viewer, tenant).await
    }

    async fn save_image_type(
        &self,
        viewer: &app::model::Viewer,
        tenant: &str,
        image_type: app::model::ImageType,
        replace: bool,
    ) -> Result<(), CoreError> {
        Core::save_image_type(self, viewer, tenant, &image_type, replace).await
    }

    async fn remove_image_type(
        &self,
        viewer: &app::model::Viewer,
        tenant: &str,
        name: &str,
    ) -> Result<(), CoreError> {
        Core::remove_image_type(self, viewer, tenant, name).await
    }

    async fn list_users(
        &self,
        viewer: &app::model::Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<app::model::UserPage, CoreError> {
        Core::list_users(self, viewer, limit, offset).await
    }

    async fn create_account(
        &self,
        viewer: &app::model::Viewer,
        username: &str,
        password: &str,
        role: app::model::Role,
    ) -> Result<app::model::UserInfo, CoreError> {
        Core::create_account(self, viewer, username, password, role).await
    }

    async fn change_account(
        &self,
        viewer: &app::model::Viewer,
        id: i64,
        change: app::model::UserChange,
    ) -> Result<app::model::UserInfo, CoreError> {
        Core::change_account(self, viewer, id, change).await
    }

    async fn reset_password(
        &self,
        viewer: &app::model::Viewer,
        id: i64,
    ) -> Result<app::model::PasswordReset, CoreError> {
        Core::reset_password(self, viewer, id).await
    }

    async fn list_environments(
        &self,
        viewer: &app::model::Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<app::model::Paged<app::model::Environment>, CoreError> {
        Core::environments_page(self, viewer, limit, offset).await
    }

    async fn create_environment(
        &self,
        viewer: &app::model::Viewer,
        spec: app::model::EnvironmentSpec,
    ) -> Result<app::model::Environment, CoreError> {
        Core::create_environment(self, viewer, spec).await
    }

    async fn delete_environment(
        &self,
        viewer: &app::model::Viewer,
        id: i64,
    ) -> Result<(), CoreError> {
        Core::delete_environment(self, viewer, id).await
    }

    async fn list_deployments(
        &self,
        viewer: &app::model::Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<app::model::Paged<app::model::Deployment>, CoreError> {
        Core::deployments_page(self, viewer, limit, offset).await
    }

    async fn deploy_targets(
        &self,
        viewer: &app::model::Viewer,
        image_id: i64,
    ) -> Result<Option<Vec<app::model::Environment>>, CoreError> {
        Core::deploy_targets(self, viewer, image_id).await
    }

    async fn deploy(
        &self,
        viewer: &app::model::Viewer,
        image_id: i64,
        environment_id: i64,
        title: &str,
    ) -> Result<app::model::Deployment, CoreError> {
        Core::deploy(self, viewer, image_id, environment_id, title, "").await
    }

    async fn delete_deployment(
        &self,
        viewer: &app::model::Viewer,
        id: i64,
    ) -> Result<(), CoreError> {
        Core::delete_deployment(self, viewer, id).await
    }
}

/// A core over a SQLite database, a blob store and local personal stores
/// (`personal/<user id>`), all in `dir`, for unit tests.
#[cfg(test)]
pub(crate) async fn test_core(dir: &std::path::Path, limits: Limits) -> Core {
    let url = format!("sqlite://{}", dir.join("depot.db").display());
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let blobs = BlobStore::open(&dir.join("blobs")).await.unwrap();
    let key = ServerKey::load(dir, None).await.unwrap();
    let personal = crate::personal::local::LocalStores::new(dir.join("personal"));
    Core::new(db, blobs, limits, &key, Arc::new(personal))
}
