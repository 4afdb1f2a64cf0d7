//! The domain records shared by the core, the dialects and the UI.

mod deployment;
mod environment;
mod image;
mod image_type;
mod provisioning;
mod store;
mod text;
mod user;
mod vice;

pub use deployment::{Deployment, DeploymentState};
pub use environment::{
    short_text, Environment, EnvironmentDraft, EnvironmentSpec, Layer, MASKED_PASSWORD,
};
pub use image::{
    image_path, DiskFormat, Image, ImageEdit, ImageKind, ImageName, ImagePage,
    InspectionAttributes, MwsAttributes, ViceAttributes,
};
pub use image_type::{is_image_type_name, ImageType, TenantInfo};
pub use provisioning::{
    is_provisioning_name, ImageLink, ImageRef, ProvisioningDraft, ProvisioningSpec,
    ProvisioningType, MAX_VIRTUALIZED_IMAGES,
};
pub use store::{
    beyond_store_limits, inside_slashes, StoreEntry, StoreListing, StorePath, SyncInfo,
    MAX_STORE_NAME, MAX_STORE_PATH,
};
pub(crate) use text::{bounded_document, bounded_word};
pub use text::{is_bidi_control, plain_text};
pub use user::{
    ApiKeyInfo, ApiKeys, NewApiKey, NewToken, PasswordReset, Principal, Role, TokenInfo,
    UserChange, UserInfo, UserPage, Username, Viewer,
};
pub use vice::{
    parse_specifics, ContentType, ManagementLayerType, RuntimeTechnologyType, ViceImageDraft,
    ViceImageSpec, ViceImageType,
};

/// One page of a listing: its items, how many there are in all, and where
/// the page starts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
}

impl<T> Paged<T> {
    /// The page's number (from 1) and how many pages there are.
    pub fn position(&self) -> (u64, u64) {
        let limit = self.limit.max(1);
        (self.offset / limit + 1, self.total.div_ceil(limit).max(1))
    }
}
