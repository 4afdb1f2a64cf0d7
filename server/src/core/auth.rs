//! Accounts and credentials: argon2id passwords, access tokens, sessions.
//!
//! An access token is a JWT (HS256, signed with a key derived from the
//! server key) carrying `sub`, `iat`, `exp`, `otp` and a random `jti`, as
//! the VSS client expects to decode (`access_token.rs`). A valid signature
//! is not enough: the token's SHA-256 must also be in the database, so that
//! it can be revoked.

use std::net::IpAddr;
use std::time::Duration;

use app::error::CoreError;
pub use app::model::TokenInfo;
use app::model::{Principal, Role, Username, Viewer};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;

use super::access_token::TokenClaims;
use super::login_guard::hash_digest;
use super::{db_error, Core};
use crate::store::{NewUser, UserRow};

/// How long a failed login is held before it is answered, on top of the
/// password check, to slow down guessing.
const LOGIN_FAILURE_DELAY: Duration = Duration::from_millis(300);

/// How long an API token lasts.
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// How often a token's last use is written down, at most.
const TOKEN_USE_NOTED_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// A token as handed to its user, once.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub id: i64,
    pub token: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The shortest password accepted for a new account.
const MIN_PASSWORD_LEN: usize = 8;

/// The longest, far past any passphrase (NIST asks for at least 64): the
/// sign-in form of a caller not signed in is read whole within a small
/// limit (`web::whole_body::MAX_ANONYMOUS_BODY`), which it must fit.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// What a password is checked against when its username does not exist, so
/// that a failed login takes as long whichever part was wrong: a hash made
/// as [`hash_password`] makes them at the default cost (a test keeps it
/// so), of no one's password, written out rather than made at each start.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$hpnrNGb1vAIYjhdSGV/aIw$0hT6ZXe3L0VGB2nn2lqpKovGJB4N/102n1GCZ+hx0WU";

/// What each new password hash costs: argon2id's memory, passes and lanes.
/// A stored hash carries its own costs and is checked with them, so a
/// change never locks anyone out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
}

impl Default for PasswordCost {
    /// argon2's defaults, OWASP's least for argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            passes: Params::DEFAULT_T_COST,
            lanes: Params::DEFAULT_P_COST,
        }
    }
}

impl PasswordCost {
    /// The least argon2 takes (8 KiB, one pass), for tests, which make
    /// hundreds of accounts: a tenth of their CPU went to hashing. No
    /// setting of the server's command line or environment reaches it.
    pub fn least() -> Self {
        Self {
            memory_kib: Params::MIN_M_COST,
            passes: Params::MIN_T_COST,
            lanes: Params::MIN_P_COST,
        }
    }
}

/// Hashes a password with argon2id at `cost` and a random salt (PHC string format).
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, CoreError> {
    fn failed(error: impl std::fmt::Display) -> CoreError {
        tracing::error!(%error, "password hashing failed");
        CoreError::Internal
    }
    let params = Params::new(cost.memory_kib, cost.passes, cost.lanes, None).map_err(failed)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(failed)
}

pub(super) fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

pub(super) use crate::store::token_digest;

/// A random password for the first admin, printed once.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Core {
    /// Creates an account; a taken username is a conflict.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<i64, CoreError> {
        self.create_user_by(None, username, password, role).await
    }

    /// Creates an account, as an administrator (`by`: their id and
    /// credentials version) while they are still one, when `by` is given.
    pub(super) async fn create_user_by(
        &self,
        by: Option<(i64, i64)>,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<i64, CoreError> {
        let username = Username::parse(username)?;
        let length = password.chars().count();
        if length < MIN_PASSWORD_LEN {
            return Err(CoreError::invalid(format!(
                "a password has at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        if length > MAX_PASSWORD_LEN {
            return Err(CoreError::invalid(format!(
                "a password has at most {MAX_PASSWORD_LEN} characters"
            )));
        }
        let (password, cost) = (password.to_owned(), self.limits.password_cost);
        let hash = tokio::task::spawn_blocking(move || hash_password(&password, cost))
            .await
            .map_err(|_| CoreError::Internal)??;
        let inserted = self
            .db
            .insert_user_by(by, username.as_str(), &hash, role.as_str(), Utc::now())
            .await
            .map_err(|error| match error.as_database_error() {
                Some(db) if db.is_unique_violation() => {
                    CoreError::Conflict(format!("the username '{}' is taken", username.as_str()))
                }
                _ => db_error(error),
            })?;
        match inserted {
            NewUser::Made(id) => Ok(id),
            // A folder below the export root named so is its keeper's, who
            // deployed there before any account had the name: an account
            // of that name would find their files where its own are looked
            // for.
            NewUser::NameKept => Err(CoreError::Conflict(format!(
                "the username '{}' names a folder below the export root that another user \
                 deploys into; choose another name",
                username.as_str()
            ))),
            NewUser::NotAnAdmin => Err(CoreError::Forbidden(
                "you are no longer an administrator".into(),
            )),
        }
    }

    /// A user's account (without using its password hash for anything).
    pub async fn user_profile(&self, id: i64) -> Result<UserRow, CoreError> {
        self.db
            .user_by_id(id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| CoreError::not_found(format!("user {id}")))
    }

    /// Creates the `admin` account on an empty database. Returns the password
    /// when it was generated, so that the caller can show it once.
    pub async fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, CoreError> {
        if self.db.count_users().await.map_err(db_error)? > 0 {
            return Ok(None);
        }
        let generated = password.is_none().then(generate_password);
        let password = password.or(generated.as_deref()).unwrap_or_default();
        match self.create_user("admin", password, Role::Admin).await {
            Ok(_) => {}
            // Another server sharing the database, started at the same
            // time, made it first: theirs stands, and this one starts too.
            Err(CoreError::Conflict(_))
                if self
                    .db
                    .user_by_name("admin")
                    .await
                    .is_ok_and(|found| found.is_some()) =>
            {
                return Ok(None)
            }
            Err(error) => return Err(error),
        }
        tracing::info!("created the first administrator account, 'admin'");
        Ok(generated)
    }

    /// Checks a username and password. Whatever was wrong, the answer is the
    /// same and comes no sooner.
    pub async fn login(&self, username: &str, password: &str) -> Result<Principal, CoreError> {
        self.login_from(username, password, None).await
    }

    /// Checks a username and password sent by a client at `client`: answered
    /// from the short-lived cache of verified credentials, else throttled per
    /// address and per account and checked on the bounded checker threads
    /// (see [`super::login_guard`]).
    pub async fn login_from(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal, CoreError> {
        if let Some((id, verified_against)) = self.login_guard.remembered(username, password) {
            match self.db.user_by_id(id).await.map_err(db_error)? {
                // A disabled account is forgotten and checked again below,
                // answered as a wrong password is.
                Some(user)
                    if user.username == username
                        && !user.disabled
                        && hash_digest(&user.password_hash) == verified_against =>
                {
                    return user.principal()
                }
                _ => self.login_guard.forget_user(id),
            }
        }
        let known = self.login_guard.known(username, client);
        self.login_guard.throttle_address(client, known)?;
        let user = match Username::parse(username) {
            Ok(name) => self
                .db
                .user_by_name(name.as_str())
                .await
                .map_err(db_error)?,
            Err(_) => None,
        };
        self.login_guard.throttle_account(username, known)?;
        let hash = user
            .as_ref()
            .map_or_else(|| DUMMY_HASH.to_owned(), |u| u.password_hash.clone());
        let matches = self
            .login_guard
            .verify(hash, password.to_owned(), known.then_some(username))
            .await?;
        match user {
            // A disabled account is answered as a wrong password is, right
            // or wrong: a quick "disabled" for the right one alone would
            // confirm a password its owner may use elsewhere.
            Some(user) if matches && !user.disabled => {
                self.login_guard
                    .remember(username, password, user.id, &user.password_hash);
                self.login_guard.signed_in(username, client);
                user.principal()
            }
            _ => {
                tracing::info!("failed login");
                tokio::time::sleep(LOGIN_FAILURE_DELAY).await;
                Err(CoreError::BadCredentials)
            }
        }
    }

    /// Checks a username and password for a browser session about to be
    /// started ([`Self::login_from`]), within the sessions one account may
    /// start in a while.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal, CoreError> {
        let principal = self.login_from(username, password, client).await?;
        self.login_guard.may_start_session(principal.id)?;
        Ok(principal)
    }

    /// Issues a new access token for a user; only its digest is stored. A
    /// token issued through a browser session names it (by digest), so that
    /// signing out revokes it.
    pub async fn issue_token(
        &self,
        user: &Principal,
        session: Option<&str>,
    ) -> Result<IssuedToken, CoreError> {
        user.require_proven_by_password("issue another token")?;
        self.login_guard.may_issue_token(user.id)?;
        let mut jti = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut jti);
        let issued_at = Utc::now();
        let expires_at = issued_at + chrono::Duration::from_std(TOKEN_TTL).unwrap_or_default();
        let claims = TokenClaims {
            sub: user.username.clone(),
            otp: false,
            jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        };
        let token = self
            .token_key
            .sign(claims, issued_at, expires_at)
            .map_err(|error| {
                tracing::error!(%error, "cannot sign a token");
                CoreError::Internal
            })?;
        let session_hash = session.map(token_digest);
        // Only for the credentials the caller proved: a token asked for with
        // a password reset meanwhile (or from an account disabled
        // meanwhile) is not made.
        let id = self
            .db
            .insert_token(
                user.id,
                user.credentials_version,
                &token_digest(&token),
                issued_at,
                expires_at,
                session_hash.as_deref(),
            )
            .await
            .map_err(db_error)?
            .ok_or(CoreError::Unauthenticated)?;
        Ok(IssuedToken {
            id,
            token,
            issued_at,
            expires_at,
        })
    }

    /// The user an unexpired, correctly signed and not revoked token belongs to.
    pub async fn viewer_from_token(&self, token: &str) -> Result<Viewer, CoreError> {
        let now = Utc::now();
        if self.token_key.verify(token, now).is_none() {
            return Ok(Viewer::Anonymous);
        }
        let digest = token_digest(token);
        let owner = self
            .db
            .user_by_token(&digest, now)
            .await
            .map_err(db_error)?;
        // A token's last use is noted at most once a minute, so that busy
        // scripts do not turn every read into a write.
        let stale_before = now - TOKEN_USE_NOTED_EVERY;
        if let Some(owner) = &owner {
            if owner.last_used_at.is_none_or(|last| last < stale_before) {
                self.db
                    .touch_token(&digest, now, stale_before)
                    .await
                    .map_err(db_error)?;
            }
        }
        Ok(match viewer_of(owner.map(|owner| owner.user))? {
            Viewer::User(principal) => Viewer::User(Principal {
                from_token: true,
                ..principal
            }),
            anonymous => anonymous,
        })
    }

    /// The caller's unexpired tokens: when each was made, expires, was last used.
    pub async fn list_tokens(&self, viewer: &Viewer) -> Result<Vec<TokenInfo>, CoreError> {
        let user = viewer.require_user()?;
        let rows = self
            .db
            .tokens_of(user.id, Utc::now())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|row| TokenInfo {
                id: row.id,
                created_at: row.created_at,
                expires_at: row.expires_at,
                last_used_at: row.last_used_at,
            })
            .collect())
    }

    /// Revokes one of the caller's tokens by id; another user's is not found.
    pub async fn revoke_token_id(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError> {
        let user = viewer.require_user()?;
        if self
            .db
            .delete_token_of(user.id, id)
            .await
            .map_err(db_error)?
        {
            Ok(())
        } else {
            Err(CoreError::not_found(format!("token {id}")))
        }
    }

    /// Revokes the tokens a browser session issued (on signing out).
    pub async fn revoke_session_tokens(&self, session: &str) -> Result<(), CoreError> {
        self.db
            .delete_session_tokens(&token_digest(session))
            .await
            .map_err(db_error)
            .map(|_| ())
    }

    /// Deletes expired tokens; answers how many.
    pub async fn purge_expired_tokens(&self) -> Result<u64, CoreError> {
        self.db
            .delete_expired_tokens(Utc::now())
            .await
            .map_err(db_error)
    }

    /// Revokes a token: however well signed, it no longer identifies anyone.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, CoreError> {
        self.db
            .delete_token(&token_digest(token))
            .await
            .map_err(db_error)
    }

    /// The user a browser session points at: nobody once the account is
    /// deleted or disabled, or its credentials changed since the session
    /// signed in (`credentials_version` is the version it signed in with;
    /// a session from before versions were kept signed in with 0).
    pub async fn viewer_from_session(
        &self,
        id: i64,
        credentials_version: Option<i64>,
    ) -> Result<Viewer, CoreError> {
        let user = self.db.user_by_id(id).await.map_err(db_error)?;
        match user {
            Some(user) if user.credentials_version != credentials_version.unwrap_or(0) => {
                Ok(Viewer::Anonymous)
            }
            user => viewer_of(user),
        }
    }
}

/// The viewer a session or token stands for: nobody once the account is
/// deleted or disabled.
fn viewer_of(user: Option<UserRow>) -> Result<Viewer, CoreError> {
    match user {
        Some(user) if !user.disabled => Ok(Viewer::User(user.principal()?)),
        _ => Ok(Viewer::Anonymous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse", PasswordCost::default()).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong horse"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_password_hash_costs() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real_hash = hash_password("correct horse", PasswordCost::default()).unwrap();
        let real = PasswordHash::new(&real_hash).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert!(!verify_password(DUMMY_HASH, ""));
    }

    #[test]
    fn token_digests_are_stable_and_hide_the_token() {
        let digest = token_digest("dpt_abc");
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, token_digest("dpt_abc"));
        assert!(!digest.contains("abc"));
    }
}
