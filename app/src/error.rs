//! The one error type of the domain core. It carries no HTTP types: each
//! dialect decides how to render it.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// What went wrong, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CoreError {
    /// The input breaks a rule; the message names the rule.
    #[error("{0}")]
    Invalid(String),
    /// No credentials, or credentials that do not identify anyone.
    #[error("authentication required")]
    Unauthenticated,
    /// Username or password wrong (deliberately not saying which).
    #[error("invalid username or password")]
    BadCredentials,
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist, or the caller may not know that it does.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (a stale version, a taken name).
    #[error("{0}")]
    Conflict(String),
    /// A size limit or quota was exceeded.
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts at something (`what`: sign-in attempts, tokens
    /// issued) from this client or for this account just now: wait.
    #[error("too many {what}; try again in {retry_after} s")]
    Throttled { what: String, retry_after: u64 },
    /// The server is checking as many passwords as it will at once: retry soon.
    #[error("the server is busy; try again in {retry_after} s")]
    Busy { retry_after: u64 },
    /// Something failed inside the server; details are in the server log only.
    #[error("internal error")]
    Internal,
    /// The call never reached the core (network, encoding).
    #[error("{0}")]
    Transport(String),
}

impl CoreError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    /// Seconds to wait before trying again, for errors that say so (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Throttled { retry_after, .. } | Self::Busy { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The HTTP status this error answers with unless a dialect says otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::Unauthenticated | Self::BadCredentials => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::TooLarge(_) => 413,
            Self::Throttled { .. } => 429,
            Self::Busy { .. } => 503,
            Self::Internal => 500,
            Self::Transport(_) => 502,
        }
    }
}

impl FromServerFnError for CoreError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Arguments the server could not read: the caller's mistake.
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => {
                CoreError::Invalid(value.to_string())
            }
            other => CoreError::Transport(other.to_string()),
        }
    }
}
