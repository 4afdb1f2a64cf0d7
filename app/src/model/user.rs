//! Users and the identity a request acts as.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// What a user may do beyond their own records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    pub fn parse(text: &str) -> Result<Self, CoreError> {
        match text {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            other => Err(CoreError::invalid(format!("unknown role '{other}'"))),
        }
    }
}

/// A login name: 1 to 64 of `[A-Za-z0-9._-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let valid_start = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let valid_chars = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if raw.len() > 64 || !valid_start || !valid_chars {
            return Err(CoreError::invalid(
                "a username is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An account as an administrator sees it in a listing: never its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A page of accounts.
pub type UserPage = super::Paged<UserInfo>;

/// A password an administrator just reset: shown to them once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordReset {
    pub username: String,
    pub password: String,
}

/// What an administrator changes about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserChange {
    Role(Role),
    Disabled,
    Enabled,
}

/// An access token as its owner sees it in a listing: never the secret.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: i64,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub expires_at: chrono::DateTime<chrono::Utc>,
    #[cfg_attr(
        feature = "hydrate",
        serde(default, with = "crate::dates::rfc3339::option")
    )]
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A token just issued: its secret is shown this once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub id: i64,
    pub token: String,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A Coopr API key as its owner sees it in a listing: never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub tenant: String,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The caller's Coopr API keys, and the tenants they may make keys for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeys {
    pub keys: Vec<ApiKeyInfo>,
    /// The tenants the caller is a member of. An administrator may also
    /// name a new tenant, which is then created.
    pub tenants: Vec<String>,
}

/// A Coopr API key just issued: shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub tenant: String,
    pub key: String,
}

/// A signed-in user, as the core and the UI need to know them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: i64,
    pub username: String,
    pub role: Role,
    /// The account's credentials version when this caller proved who they
    /// are: what they make (a session, a token, a key) is good for it only.
    #[serde(default)]
    pub credentials_version: i64,
    /// This caller proved who they are with a token or an API key rather
    /// than a password or a browser session. Such a caller makes no further
    /// credentials: a token that could mint its successor would outlive its
    /// own revocation.
    #[serde(default)]
    pub from_token: bool,
}

impl Principal {
    /// `Forbidden` when this caller may not make credentials (see `from_token`).
    pub fn require_proven_by_password(&self, what: &str) -> Result<(), CoreError> {
        if self.from_token {
            Err(CoreError::Forbidden(format!(
                "a token cannot {what}: sign in with your password (HTTP Basic) or in the browser"
            )))
        } else {
            Ok(())
        }
    }
}

/// Who is asking: nobody, or a known user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Viewer {
    #[default]
    Anonymous,
    User(Principal),
}

impl Viewer {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Self::Anonymous => None,
            Self::User(principal) => Some(principal),
        }
    }

    /// The signed-in user, or `Unauthenticated`.
    pub fn require_user(&self) -> Result<&Principal, CoreError> {
        self.principal().ok_or(CoreError::Unauthenticated)
    }

    /// The signed-in administrator, `Unauthenticated` for nobody, or
    /// `Forbidden` ("only administrators {what}") for anyone else.
    pub fn require_admin(&self, what: &str) -> Result<&Principal, CoreError> {
        let user = self.require_user()?;
        if user.role == Role::Admin {
            Ok(user)
        } else {
            Err(CoreError::Forbidden(format!("only administrators {what}")))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.principal().is_some_and(|p| p.role == Role::Admin)
    }

    pub fn user_id(&self) -> Option<i64> {
        self.principal().map(|p| p.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rule() {
        for good in ["admin", "a", "j.doe-2_x"] {
            assert!(Username::parse(good).is_ok(), "{good} refused");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "ü",
            "x;drop",
            "ad\u{202e}nim",
            "admin\u{200e}",
            &"a".repeat(65),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn anonymous_viewers_are_not_users() {
        assert_eq!(
            Viewer::Anonymous.require_user(),
            Err(CoreError::Unauthenticated)
        );
        assert!(!Viewer::Anonymous.is_admin());
    }
}
