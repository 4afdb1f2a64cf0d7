//! Every ingest path runs the one inspector ([`depot_inspect`]) while the
//! bytes are written; this module turns what it found into the catalog's
//! terms: a [`DiskFormat`], the columns a record stores, and the refusal a
//! user reads.

use std::io::Read;

use app::error::CoreError;
use app::model::{DiskFormat, InspectionAttributes};
use depot_inspect::OvfMetadata;

/// What the bytes of a file say about it, in the catalog's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub format: DiskFormat,
    /// The size of the disk the guest sees, for disks (the sum for an OVA).
    pub virtual_size: Option<i64>,
    /// A precise description: "qcow2 v3", "vmdk streamOptimized", "raw (GPT)", …
    pub detail: String,
    /// The volume label of an ISO image.
    pub volume_label: Option<String>,
    /// What the descriptor of an OVA or OVF says.
    pub ovf: Option<OvfMetadata>,
}

fn catalog_format(format: depot_inspect::DiskFormat) -> DiskFormat {
    use depot_inspect::DiskFormat as Found;
    match format {
        Found::Raw => DiskFormat::Raw,
        Found::Qcow2 => DiskFormat::Qcow2,
        Found::Vmdk => DiskFormat::Vmdk,
        Found::Vhd => DiskFormat::Vhd,
        Found::Vhdx => DiskFormat::Vhdx,
        Found::Iso => DiskFormat::Iso,
        Found::Ova => DiskFormat::Ova,
        Found::Ovf => DiskFormat::Ovf,
    }
}

impl From<depot_inspect::Inspection> for Inspection {
    fn from(found: depot_inspect::Inspection) -> Self {
        Self {
            format: catalog_format(found.format),
            virtual_size: found.virtual_size,
            detail: found.detail,
            volume_label: found.volume_label,
            ovf: found.ovf,
        }
    }
}

/// Inspects a whole file as it streams past; Err is why it is refused.
pub fn inspect(reader: &mut dyn Read) -> Result<Inspection, String> {
    depot_inspect::inspect(reader).map(Inspection::from)
}

impl Inspection {
    /// The refusal of a file, as its uploader hears it.
    pub fn refused(reason: String) -> CoreError {
        CoreError::invalid(format!("refused: {reason}"))
    }

    /// What the catalog stores of this inspection.
    pub fn attributes(&self) -> InspectionAttributes {
        let ovf = self.ovf.as_ref();
        let clamp = |value: u64| i64::try_from(value).ok();
        InspectionAttributes {
            detail: Some(self.detail.clone()),
            volume_label: self.volume_label.clone(),
            cpus: ovf.and_then(|ovf| ovf.cpus).map(i64::from),
            memory_mib: ovf.and_then(|ovf| ovf.memory_mib).and_then(clamp),
            product: ovf.and_then(|ovf| ovf.product.clone()),
            vendor: ovf.and_then(|ovf| ovf.vendor.clone()),
            product_version: ovf.and_then(|ovf| ovf.version.clone()),
            networks: ovf.map(|ovf| ovf.networks.clone()).unwrap_or_default(),
        }
    }

    /// The guest OS the descriptor names, if any.
    pub fn guest_os(&self) -> Option<&str> {
        self.ovf.as_ref().and_then(|ovf| ovf.os_type.as_deref())
    }

    /// Refuses a file whose bytes contradict the format its uploader declared.
    pub fn check_declared(&self, declared: Option<DiskFormat>) -> Result<(), CoreError> {
        match declared {
            // An ISO image is a raw image of its medium.
            Some(DiskFormat::Raw) if self.format == DiskFormat::Iso => Ok(()),
            Some(declared) if declared != self.format => Err(Self::refused(format!(
                "declared as {}, but its bytes are {}",
                declared.as_str(),
                self.detail
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a file named as an OVA or OVF package whose bytes the
    /// inspector did not read as one (a descriptor after a long comment, a
    /// tar archive of the old kind): it would be stored, as raw bytes whose
    /// descriptor and disks no one checked, under a name that has tools
    /// open it as a package.
    pub fn check_named(&self, name: &str) -> Result<(), CoreError> {
        match package_named(name) {
            Some(named) if named != self.format => Err(Self::refused(format!(
                "named as an {} package, but Depot cannot read its bytes as one (it found {}); \
                 export it again as an OVA (a tar archive whose first entry is the descriptor) \
                 or an OVF descriptor",
                named.as_str().to_ascii_uppercase(),
                self.detail
            ))),
            _ => Ok(()),
        }
    }
}

/// The package a name says a file is: `.ova` or `.ovf`, in any case.
fn package_named(name: &str) -> Option<DiskFormat> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".ova") {
        Some(DiskFormat::Ova)
    } else if lower.ends_with(".ovf") {
        Some(DiskFormat::Ovf)
    } else {
        None
    }
}

/// Refuses a new name for an image with bytes that names a package its
/// bytes are not (as [`Inspection::check_named`] refuses it on upload): an
/// image renamed so would be deployed and downloaded as a package no one
/// checked.
pub fn check_renamed(name: &str, image: &app::model::Image) -> Result<(), CoreError> {
    match package_named(name) {
        Some(named) if image.sha256.is_some() && image.format != Some(named) => {
            Err(CoreError::invalid(format!(
                "an image whose bytes are not an {} package may not be named as one",
                named.as_str().to_ascii_uppercase()
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_format_must_match() {
        let raw = Inspection::from(depot_inspect::inspect_bytes(b"plain bytes").unwrap());
        assert_eq!(raw.format, DiskFormat::Raw);
        assert!(raw.check_declared(Some(DiskFormat::Raw)).is_ok());
        assert!(raw.check_declared(None).is_ok());
        let refused = raw.check_declared(Some(DiskFormat::Qcow2)).unwrap_err();
        assert!(
            refused.to_string().contains("declared as qcow2"),
            "{refused}"
        );
    }

    #[test]
    fn a_package_s_name_holds_a_package() {
        // An OVF descriptor after more than the 4 KiB the inspector looks
        // at: raw bytes to it.
        let mut hidden = b"<?xml version='1.0'?><!--".to_vec();
        hidden.extend(std::iter::repeat_n(b'x', 5000));
        hidden
            .extend(b"--><Envelope><References><File href='/etc/shadow'/></References></Envelope>");
        let raw = Inspection::from(depot_inspect::inspect_bytes(&hidden).unwrap());
        assert_eq!(raw.format, DiskFormat::Raw);
        for name in ["appliance.ova", "appliance.OVF"] {
            let refused = raw.check_named(name).unwrap_err();
            assert!(refused.to_string().contains("package"), "{refused}");
        }
        assert!(raw.check_named("disk.img").is_ok());
        let ovf = b"<?xml version='1.0'?><Envelope><References/></Envelope>";
        let ovf = Inspection::from(depot_inspect::inspect_bytes(ovf).unwrap());
        assert_eq!(ovf.format, DiskFormat::Ovf);
        assert!(ovf.check_named("appliance.ovf").is_ok());
        assert!(ovf.check_named("appliance.ova").is_err());
    }
}
