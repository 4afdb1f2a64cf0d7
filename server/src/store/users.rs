//! User accounts.

use chrono::{DateTime, Utc};

use super::rows::UserRow;
use super::{with_pool, Db};

const USER_SELECT: &str =
    "SELECT id, username, password_hash, email, full_name, role, disabled, created_at, \
     credentials_version FROM users";

/// Ends an account's sessions (its credentials version moves on) and
/// replaces its password hash (`$1`, if not NULL) or disables it (`$2`).
const REVOKE: &str = "UPDATE users SET credentials_version = credentials_version + 1, \
     password_hash = COALESCE($1, password_hash), disabled = (disabled OR $2) WHERE id = $3";

/// Then its tokens and keys go (`$1`, the account).
const REVOKED: [&str; 2] = [
    "DELETE FROM api_tokens WHERE user_id = $1",
    "DELETE FROM api_keys WHERE user_id = $1",
];

/// Whether account `$admin` is still an enabled administrator at
/// credentials version `$credentials`, read in transaction `$tx` (of
/// either backend, after the account's row was locked in it).
macro_rules! still_admin {
    ($tx:ident, $admin:expr, $credentials:expr) => {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM users WHERE id = $1 AND role = $2 AND disabled = $3 \
             AND credentials_version = $4",
        )
        .bind($admin)
        .bind(app::model::Role::Admin.as_str())
        .bind(false)
        .bind($credentials)
        .fetch_one(&mut *$tx)
        .await?
            == 1
    };
}

/// What came of making an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewUser {
    Made(i64),
    /// A folder below the export root keeps the name.
    NameKept,
    /// The administrator making it was demoted meanwhile: nothing was made.
    NotAnAdmin,
}

/// An administrator's change to an account
/// ([`Db::change_account_as`]).
#[derive(Clone, PartialEq, Eq)]
pub enum AccountChange {
    Role(app::model::Role),
    Enable,
    /// Disabled, with every session, token and key it had ended.
    Disable,
    /// A new password hash, with every session, token and key it had ended.
    Password(String),
}

impl std::fmt::Debug for AccountChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Role(role) => write!(f, "Role({})", role.as_str()),
            Self::Enable => f.write_str("Enable"),
            Self::Disable => f.write_str("Disable"),
            Self::Password(_) => f.write_str("Password(..)"),
        }
    }
}

/// What came of an administrator's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChanged {
    Done,
    NoSuchAccount,
    /// The administrator was demoted, disabled or had their credentials
    /// reset meanwhile: nothing changed.
    NotAnAdmin,
}

impl super::tokens::Written for AccountChanged {
    fn changed_any(&self) -> bool {
        *self == Self::Done
    }
}

impl Db {
    #[tracing::instrument(skip(self), err)]
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
        let text = format!("{USER_SELECT} WHERE username = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&text).bind(username).fetch_optional(pool).await
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        let text = format!("{USER_SELECT} WHERE id = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&text).bind(id).fetch_optional(pool).await
        })
    }

    pub async fn count_users(&self) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(pool).await
        })
    }

    /// Inserts a user; a taken username comes back as a unique violation,
    /// and `None` answers a name that a folder below the export root has
    /// (another user deploys there: the account would read their files).
    #[tracing::instrument(skip(self, password_hash), err)]
    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let made = self
            .insert_user_by(None, username, password_hash, role, now)
            .await?;
        Ok(match made {
            NewUser::Made(id) => Some(id),
            NewUser::NameKept | NewUser::NotAnAdmin => None,
        })
    }

    /// Makes an account, as an administrator (`by`: their id and the
    /// credentials version they proved) while they are still one, when
    /// `by` is given: one being demoted meanwhile makes no administrator.
    #[tracing::instrument(skip(self, password_hash), err)]
    pub async fn insert_user_by(
        &self,
        by: Option<(i64, i64)>,
        username: &str,
        password_hash: &str,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<NewUser, sqlx::Error> {
        const INSERT: &str = "INSERT INTO users (username, password_hash, role, created_at) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
             (SELECT 1 FROM export_folders WHERE name = $1) RETURNING id";
        let (lock, user_lock) = (self.name_lock(), self.user_lock());
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(username).execute(&mut *tx).await?;
            if let Some((admin_id, admin_credentials)) = by {
                sqlx::query(user_lock).bind(admin_id).execute(&mut *tx).await?;
                if !still_admin!(tx, admin_id, admin_credentials) {
                    return Ok(NewUser::NotAnAdmin);
                }
            }
            let id = sqlx::query_scalar::<_, i64>(INSERT)
                .bind(username)
                .bind(password_hash)
                .bind(role)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id.map_or(NewUser::NameKept, NewUser::Made))
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn set_user_profile(
        &self,
        id: i64,
        email: &str,
        full_name: &str,
    ) -> Result<(), sqlx::Error> {
        const UPDATE: &str = "UPDATE users SET email = $1, full_name = $2 WHERE id = $3";
        let db = self.clone();
        let email = email.to_owned();
        let full_name = full_name.to_owned();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                sqlx::query(UPDATE)
                    .bind(email)
                    .bind(full_name)
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })
        })
        .await
    }

    /// A page of the accounts in username order, and how many there are.
    #[tracing::instrument(skip(self), err)]
    pub async fn list_users(
        &self,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<UserRow>, i64), sqlx::Error> {
        let text = format!(
            "{USER_SELECT} ORDER BY username LIMIT {} OFFSET {}",
            super::sql::bounded(limit),
            super::sql::bounded(offset)
        );
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, UserRow>(&text).fetch_all(pool).await?;
            let total = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?;
            Ok((rows, total))
        })
    }

    /// Makes an administrator's change to an account, only while the
    /// administrator is still an enabled one, at the credentials version
    /// they proved themselves against, when it is written.
    ///
    /// Both accounts' rows are locked first, in the order of their ids, so
    /// that two administrators changing each other at once take turns (and
    /// never deadlock): of two demoting each other, the second finds it is no
    /// longer an administrator, and one is always left.
    #[tracing::instrument(skip(self), err)]
    pub async fn change_account_as(
        &self,
        (admin_id, admin_credentials): (i64, i64),
        id: i64,
        change: AccountChange,
    ) -> Result<AccountChanged, sqlx::Error> {
        let db = self.clone();
        let lock = self.user_lock();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                let mut tx = pool.begin().await?;
                for locked in [admin_id.min(id), admin_id.max(id)] {
                    sqlx::query(lock).bind(locked).execute(&mut *tx).await?;
                }
                if !still_admin!(tx, admin_id, admin_credentials) {
                    return Ok(AccountChanged::NotAnAdmin);
                }
                let found = match &change {
                    AccountChange::Role(role) => sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                        .bind(role.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected() == 1,
                    AccountChange::Enable => sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                        .bind(false)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected() == 1,
                    AccountChange::Disable | AccountChange::Password(_) => {
                        let (hash, disable) = match &change {
                            AccountChange::Password(hash) => (Some(hash.as_str()), false),
                            _ => (None, true),
                        };
                        let found = sqlx::query(REVOKE)
                            .bind(hash)
                            .bind(disable)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected() == 1;
                        for delete in REVOKED {
                            sqlx::query(delete).bind(id).execute(&mut *tx).await?;
                        }
                        found
                    }
                };
                if !found {
                    return Ok(AccountChanged::NoSuchAccount);
                }
                tx.commit().await?;
                Ok(AccountChanged::Done)
            })
        })
        .await
    }
}
