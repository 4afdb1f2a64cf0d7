//! Images: VM appliances, ISOs, disks and definitions, with or without bytes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::{plain_text, ImageLink, Viewer};

/// What an image is, as the catalogs group them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// An OVA/OVF appliance.
    Vm,
    /// Installation media.
    Iso,
    /// A raw, qcow2 or vmdk disk.
    Disk,
    /// A Dockerfile, Packer file or other recipe.
    Definition,
}

impl ImageKind {
    pub const ALL: [ImageKind; 4] = [Self::Vm, Self::Iso, Self::Disk, Self::Definition];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vm => "vm",
            Self::Iso => "iso",
            Self::Disk => "disk",
            Self::Definition => "definition",
        }
    }

    pub fn parse(text: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| CoreError::invalid(format!("unknown image kind '{text}'")))
    }
}

/// The format of an image's bytes, as read from its magic bytes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFormat {
    Ova,
    Ovf,
    Iso,
    Raw,
    Qcow2,
    Vmdk,
    Vhd,
    Vhdx,
    DockerFile,
    DockerImage,
    Packerfile,
}

impl DiskFormat {
    pub const ALL: [DiskFormat; 11] = [
        Self::Ova,
        Self::Ovf,
        Self::Iso,
        Self::Raw,
        Self::Qcow2,
        Self::Vmdk,
        Self::Vhd,
        Self::Vhdx,
        Self::DockerFile,
        Self::DockerImage,
        Self::Packerfile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ova => "ova",
            Self::Ovf => "ovf",
            Self::Iso => "iso",
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
            Self::Vmdk => "vmdk",
            Self::Vhd => "vhd",
            Self::Vhdx => "vhdx",
            Self::DockerFile => "docker-file",
            Self::DockerImage => "docker-image",
            Self::Packerfile => "packerfile",
        }
    }

    pub fn parse(text: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str() == text)
            .ok_or_else(|| CoreError::invalid(format!("unknown disk format '{text}'")))
    }

    /// The kind of image a file of this format makes.
    pub fn kind(self) -> ImageKind {
        match self {
            Self::Ova | Self::Ovf => ImageKind::Vm,
            Self::Iso => ImageKind::Iso,
            Self::Raw | Self::Qcow2 | Self::Vmdk | Self::Vhd | Self::Vhdx | Self::DockerImage => {
                ImageKind::Disk
            }
            Self::DockerFile | Self::Packerfile => ImageKind::Definition,
        }
    }
}

/// A file name that is safe to show, store and send back in `Content-Disposition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName(String);

impl ImageName {
    /// Takes the last path component of what a client sent and checks it.
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let name = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
        if name.is_empty() || name == "." || name == ".." {
            return Err(CoreError::invalid("a file name is required"));
        }
        if name.len() > 255 {
            return Err(CoreError::invalid("the file name is longer than 255 bytes"));
        }
        if name.contains('"') {
            return Err(CoreError::invalid("the file name may not contain quotes"));
        }
        plain_text("the file name", name)?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The longest description a record keeps, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;

/// A change to what people call and read about an image, made from its page.
/// `version` is the one the editor saw: a record changed since is not
/// overwritten (MWS's rule), and `public` is for administrators only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEdit {
    pub name: String,
    pub label: String,
    pub description: String,
    /// `None` leaves the visibility as it is.
    pub public: Option<bool>,
    pub version: i64,
}

impl ImageEdit {
    /// Checks every field, trimming the one-line ones; the first problem is
    /// the answer.
    pub fn checked(self) -> Result<Self, CoreError> {
        if self.name.contains(['/', '\\']) {
            return Err(CoreError::invalid("the name may not contain / or \\"));
        }
        let name = ImageName::parse(&self.name)?.into_inner();
        let label = self.label.trim().to_owned();
        plain_text("the label", &label)?;
        if label.chars().count() > 255 {
            return Err(CoreError::invalid(
                "the label is longer than 255 characters",
            ));
        }
        // A description has lines and tabs, nothing else out of the ordinary.
        let description = self.description.trim().replace("\r\n", "\n");
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(CoreError::invalid(format!(
                "the description is longer than {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        for line in description.split(['\n', '\t']) {
            plain_text("the description", line)?;
        }
        Ok(Self {
            name,
            label,
            description,
            ..self
        })
    }
}

/// Provisioning attributes that Moab Web Services reads and writes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MwsAttributes {
    pub os_type: Option<String>,
    pub hypervisor: bool,
    pub hypervisor_type: Option<String>,
    pub supports_physical_machine: bool,
    pub supports_virtual_machine: bool,
    pub template_name: Option<String>,
    /// `stateful`, `stateless` or `linkedclone`.
    pub provisioning_type: Option<String>,
    pub active: bool,
    pub features: Vec<String>,
    /// Provisioning manager -> its settings (at most one key).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// The images a hypervisor image can run.
    pub virtualized_images: Vec<ImageLink>,
}

impl Default for MwsAttributes {
    /// What a record that never went through MWS has: active, nothing else set.
    fn default() -> Self {
        Self {
            os_type: None,
            hypervisor: false,
            hypervisor_type: None,
            supports_physical_machine: false,
            supports_virtual_machine: false,
            template_name: None,
            provisioning_type: None,
            active: true,
            features: Vec::new(),
            extensions: serde_json::Map::new(),
            virtualized_images: Vec::new(),
        }
    }
}

/// Attributes of the ViCE image registry.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViceAttributes {
    pub title: Option<String>,
    /// `implicit` or `declarative`.
    pub image_type: Option<String>,
    pub imported: bool,
    pub origin_environment: Option<String>,
    pub environment_ref: Option<String>,
    pub specifics: Option<serde_json::Value>,
}

/// What inspecting a record's bytes found (nothing for records without
/// bytes). An OVA's or OVF's guest OS goes to [`MwsAttributes::os_type`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InspectionAttributes {
    /// A precise description of the format: "qcow2 v3", "vmdk streamOptimized", "raw (GPT)".
    pub detail: Option<String>,
    /// An ISO image's volume label.
    pub volume_label: Option<String>,
    /// From an OVF descriptor: virtual CPUs, memory, product, vendor, version, networks.
    pub cpus: Option<i64>,
    pub memory_mib: Option<i64>,
    pub product: Option<String>,
    pub vendor: Option<String>,
    pub product_version: Option<String>,
    pub networks: Vec<String>,
}

/// One image record, the same whichever dialect or page shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: i64,
    pub kind: ImageKind,
    pub name: String,
    pub label: String,
    /// Free text from its owner, several lines at most a few thousand characters.
    #[serde(default)]
    pub description: String,
    pub folder: String,
    pub data_store: String,
    pub public: bool,
    pub owner_id: Option<i64>,
    pub owner: Option<String>,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub created_at: DateTime<Utc>,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub updated_at: DateTime<Utc>,
    /// Size in bytes, when the record has bytes.
    pub size: Option<i64>,
    /// Hex SHA-256 of the bytes, when the record has bytes.
    pub sha256: Option<String>,
    pub format: Option<DiskFormat>,
    pub virtual_size: Option<i64>,
    /// Bumped on every change, for optimistic concurrency.
    pub version: i64,
    pub mws: MwsAttributes,
    pub vice: ViceAttributes,
    pub inspection: InspectionAttributes,
}

impl Image {
    /// The VSS-style path: `[data_store] folder/name`.
    pub fn path(&self) -> String {
        image_path(&self.data_store, &self.folder, &self.name)
    }

    /// Whether the record carries bytes that can be downloaded.
    pub fn has_content(&self) -> bool {
        self.sha256.is_some()
    }

    /// Whether the viewer may change, delete or deploy this image: its
    /// owner and admins only (public demo images have no owner).
    pub fn writable_by(&self, viewer: &Viewer) -> bool {
        viewer.is_admin() || (self.owner_id.is_some() && self.owner_id == viewer.user_id())
    }
}

/// Builds the VSS path of an image from its parts.
pub fn image_path(data_store: &str, folder: &str, name: &str) -> String {
    if folder.is_empty() {
        format!("[{data_store}] {name}")
    } else {
        format!("[{data_store}] {folder}/{name}")
    }
}

/// One page of a listing, with the total that matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePage {
    pub items: Vec<Image>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_only_the_last_component() {
        assert_eq!(
            ImageName::parse("C:\\x\\disk.iso").unwrap().as_str(),
            "disk.iso"
        );
        assert_eq!(
            ImageName::parse("../../etc/passwd").unwrap().as_str(),
            "passwd"
        );
    }

    #[test]
    fn names_reject_empty_dots_and_controls() {
        for bad in [
            "",
            "  ",
            "..",
            "a/..",
            "bad\nname",
            "quo\"te",
            "evil\u{202e}gpj.iso",
            "\u{2067}x.iso",
            "x\u{200f}.iso",
            &"x".repeat(256),
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn path_joins_store_folder_and_name() {
        assert_eq!(
            image_path("vsphere", "user/a", "x.ova"),
            "[vsphere] user/a/x.ova"
        );
        assert_eq!(image_path("vsphere", "", "x.ova"), "[vsphere] x.ova");
    }

    #[test]
    fn formats_round_trip_and_map_to_kinds() {
        for format in DiskFormat::ALL {
            assert_eq!(DiskFormat::parse(format.as_str()).unwrap(), format);
        }
        assert_eq!(DiskFormat::Ova.kind(), ImageKind::Vm);
        assert_eq!(DiskFormat::Qcow2.kind(), ImageKind::Disk);
        assert!(DiskFormat::parse("exe").is_err());
    }
}
