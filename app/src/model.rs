//! The domain records shared by the core, the dialects and the UI.

mod deployment;
mod environment;
mod image;
mod image_type;
mod provisioning;
mod text;
mod user;
mod vice;

pub use deployment::{Deployment, DeploymentState};
pub use environment::{
    short_text, Environment, EnvironmentDraft, EnvironmentSpec, Layer, MASKED_PASSWORD,
};
pub use image::{
    image_path, DiskFormat, Image, ImageKind, ImageName, ImagePage, InspectionAttributes,
    MwsAttributes, ViceAttributes,
};
pub use image_type::{is_image_type_name, ImageType};
pub use provisioning::{
    is_provisioning_name, ImageLink, ImageRef, ProvisioningDraft, ProvisioningSpec,
    ProvisioningType,
};
pub use text::{is_bidi_control, plain_text};
pub use user::{NewToken, Principal, Role, TokenInfo, Username, Viewer};
pub use vice::{
    parse_specifics, ContentType, ManagementLayerType, RuntimeTechnologyType, ViceImageDraft,
    ViceImageSpec, ViceImageType,
};
