//! ViCE deployments: an image put into one of its owner's execution
//! environments by a job of the persistent queue, and how far that got.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a deployment's job is. `Queued` and `Running` still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    Queued,
    Running,
    Done,
    Failed,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 4] = [Self::Queued, Self::Running, Self::Done, Self::Failed];

    /// The word stored in the database and shown by ViCE and the browser.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Whether the job may still change this deployment.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// A deployment as stored and shown, with the names of what it joins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: i64,
    pub user_id: i64,
    /// The owner's username.
    #[serde(default)]
    pub owner: String,
    /// None once the image is deleted: the deployment, and the file it
    /// wrote, outlive it.
    pub image_id: Option<i64>,
    pub image_name: String,
    pub environment_id: i64,
    pub environment_title: String,
    pub title: String,
    pub environment_reference: String,
    pub state: DeploymentState,
    /// Why a failed deployment failed; empty otherwise.
    pub reason: String,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub created_at: DateTime<Utc>,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_what_they_write() {
        for state in DeploymentState::ALL {
            assert_eq!(DeploymentState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.as_str().into())
            );
        }
        assert_eq!(DeploymentState::parse("Done"), None);
        assert!(DeploymentState::Running.is_pending());
        assert!(!DeploymentState::Failed.is_pending());
    }
}
