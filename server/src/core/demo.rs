//! The demo catalog (`depot serve --demo`): public, metadata-only records that
//! make the VSS seeds' examples give the seeds' answers, so that a new user
//! sees a catalog at once.

use app::error::CoreError;
use app::model::{image_path, ImageKind};
use chrono::{DateTime, TimeZone, Utc};

use super::{db_error, Core};
use crate::store::{NameScope, NewImage};

/// The seeds' data store for the public catalog.
const DATA_STORE: &str = "vss-ISOs";

/// ISOs, inserted first so that the seed's `MS_Win2003std_R2_SP2_DISK1.iso`
/// gets id 10, as in its example.
const ISOS: [(&str, &str); 44] = [
    ("Linux/CentOS", "CentOS-6.9-x86_64-bin-DVD1.iso"),
    ("Linux/CentOS", "CentOS-6.9-x86_64-minimal.iso"),
    ("Linux/CentOS", "CentOS-7-x86_64-DVD-1708.iso"),
    ("Linux/CentOS", "CentOS-7-x86_64-Minimal-1708.iso"),
    ("Linux/CentOS", "CentOS-7-x86_64-NetInstall-1708.iso"),
    ("Linux/CentOS", "CentOS-7-x86_64-Everything-1708.iso"),
    ("Linux/Ubuntu", "ubuntu-14.04.5-server-amd64.iso"),
    ("Linux/Ubuntu", "ubuntu-16.04.3-server-amd64.iso"),
    ("Linux/Ubuntu", "ubuntu-17.10-server-amd64.iso"),
    ("Windows/Win2003", "MS_Win2003std_R2_SP2_DISK1.iso"),
    ("Windows/Win2003", "MS_Win2003std_R2_SP2_DISK2.iso"),
    (
        "Windows/Win2008",
        "en_windows_server_2008_r2_with_sp1_x64_dvd.iso",
    ),
    ("Windows/Win2012", "en_windows_server_2012_r2_x64_dvd.iso"),
    ("Windows/Win2016", "en_windows_server_2016_x64_dvd.iso"),
    ("Windows/Win10", "en_windows_10_enterprise_x64_dvd.iso"),
    ("Linux/Debian", "debian-8.9.0-amd64-netinst.iso"),
    ("Linux/Debian", "debian-9.2.1-amd64-netinst.iso"),
    ("Linux/Debian", "debian-9.2.1-amd64-DVD-1.iso"),
    ("Linux/Fedora", "Fedora-Server-dvd-x86_64-26-1.5.iso"),
    ("Linux/Fedora", "Fedora-Server-dvd-x86_64-27-1.6.iso"),
    ("Linux/Fedora", "Fedora-Workstation-Live-x86_64-27-1.6.iso"),
    ("Linux/RHEL", "rhel-server-6.9-x86_64-dvd.iso"),
    ("Linux/RHEL", "rhel-server-7.4-x86_64-dvd.iso"),
    ("Linux/openSUSE", "openSUSE-Leap-42.3-DVD-x86_64.iso"),
    ("Linux/SLES", "SLE-12-SP3-Server-DVD-x86_64-GM-DVD1.iso"),
    (
        "Linux/OracleLinux",
        "OracleLinux-R7-U4-Server-x86_64-dvd.iso",
    ),
    ("Linux/Arch", "archlinux-2017.11.01-x86_64.iso"),
    ("Linux/Alpine", "alpine-virt-3.6.2-x86_64.iso"),
    ("Linux/Kali", "kali-linux-2017.3-amd64.iso"),
    ("Linux/Mint", "linuxmint-18.3-cinnamon-64bit.iso"),
    ("BSD/FreeBSD", "FreeBSD-11.1-RELEASE-amd64-disc1.iso"),
    ("BSD/OpenBSD", "install62.iso"),
    ("Solaris", "sol-11_3-text-x86.iso"),
    ("Tools", "VMware-tools-windows-10.1.15.iso"),
    ("Tools", "VMware-tools-linux-10.1.15.iso"),
    ("Tools", "systemrescuecd-x86-5.1.2.iso"),
    ("Tools", "gparted-live-0.30.0-1-amd64.iso"),
    ("Tools", "clonezilla-live-2.5.2-31-amd64.iso"),
    ("Tools", "memtest86+-5.01.iso"),
    (
        "Software/SQLServer",
        "en_sql_server_2016_standard_with_service_pack_1_x64_dvd.iso",
    ),
    (
        "Software/SQLServer",
        "en_sql_server_2017_standard_x64_dvd.iso",
    ),
    ("Linux/CoreOS", "coreos_production_iso_image.iso"),
    ("Linux/Photon", "photon-2.0-31bac04.iso"),
    ("Linux/CentOS", "CentOS-Atomic-Host-7-x86_64-Installer.iso"),
];

/// OVA images, in the order the seed's first page lists them: the fifth is
/// `coreos_production_vmware_ova.ova` and the first `ubu…` is the zesty i386.
const OVAS: [(&str, &str); 14] = [
    ("VmImages/photon", "photon-custom-hw11-2.0-304b817.ova"),
    ("VmImages/photon", "photon-custom-hw13-2.0-304b817.ova"),
    ("VmImages/centos", "CentOS-7-x86_64-GenericCloud-1708.ova"),
    ("VmImages/debian", "debian-9.2.1-openstack-amd64.ova"),
    ("VmImages/core-os", "coreos_production_vmware_ova.ova"),
    ("VmImages/fedora", "Fedora-Cloud-Base-27-1.6.x86_64.ova"),
    ("VmImages/rancher", "rancheros-v1.1.0.ova"),
    ("VmImages/ubuntu", "ubuntu-zesty-server-cloudimg-i386.ova"),
    ("VmImages/ubuntu", "ubuntu-xenial-server-cloudimg-amd64.ova"),
    ("VmImages/ubuntu", "ubuntu-zesty-server-cloudimg-amd64.ova"),
    ("VmImages/ubuntu", "ubuntu-xenial-server-cloudimg-i386.ova"),
    ("VmImages/core-os", "coreos_beta_vmware_ova.ova"),
    (
        "VmImages/opensuse",
        "openSUSE-Leap-42.3-OpenStack.x86_64.ova",
    ),
    ("VmImages/appliances", "graylog-2.4.3-1.ova"),
];

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .unwrap_or_default()
}

pub(crate) fn record(
    kind: ImageKind,
    folder: &str,
    name: &str,
    created: DateTime<Utc>,
) -> NewImage {
    NewImage {
        kind: kind.as_str(),
        name: name.to_owned(),
        label: format!("{folder}/{name}"),
        folder: folder.to_owned(),
        data_store: DATA_STORE.to_owned(),
        path: image_path(DATA_STORE, folder, name),
        public: true,
        owner_id: None,
        owner_images_at_most: None,
        size: None,
        sha256: None,
        format: None,
        virtual_size: None,
        now: created,
        provisioning: None,
        virtualized: Vec::new(),
        vice: None,
        inspection: Default::default(),
        guest_os: None,
    }
}

impl Core {
    /// Fills an empty catalog with the demo records; `false` if it was not empty.
    pub async fn seed_demo_catalog(&self) -> Result<bool, CoreError> {
        if self.db.count_images().await.map_err(db_error)? > 0 {
            return Ok(false);
        }
        // The seeds' times (EST), in UTC.
        let isos_added = utc(2017, 11, 17, 18, 43, 11);
        let ovas_added = utc(2017, 11, 24, 20, 37, 36);
        // Each unless its name is in the catalog already: servers started
        // together on a new database, both finding it empty, seed it once.
        let records = ISOS
            .iter()
            .map(|(folder, name)| record(ImageKind::Iso, folder, name, isos_added))
            .chain(
                OVAS.iter()
                    .map(|(folder, name)| record(ImageKind::Vm, folder, name, ovas_added)),
            );
        for new in records {
            self.db
                .insert_image_if_name_free(&new, Some(NameScope::Everyone))
                .await
                .map_err(db_error)?;
        }
        tracing::info!(
            isos = ISOS.len(),
            images = OVAS.len(),
            "filled the empty catalog with the demo records"
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_matches_the_seeds_counts() {
        assert_eq!(OVAS.len(), 14);
        let ubu = OVAS
            .iter()
            .filter(|(_, name)| name.to_ascii_lowercase().starts_with("ubu"))
            .count();
        assert_eq!(ubu, 4);
        assert_eq!(OVAS[4].1, "coreos_production_vmware_ova.ova");
        assert_eq!(ISOS[9].1, "MS_Win2003std_R2_SP2_DISK1.iso");
        assert!(ISOS.len() >= 40);
        assert!(
            ISOS.iter()
                .filter(|(_, n)| n.starts_with("CentOS-"))
                .count()
                >= 3
        );
    }
}
