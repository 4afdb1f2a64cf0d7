//! Every upload is inspected before it is published: a corpus of images made
//! by the real tools (qemu-img, genisoimage, parted, Python's tarfile) is
//! uploaded, each accepted format is recognised with its details, and each
//! unsafe file is refused with a reason, leaving no record, blob or temp file.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use depot_server::blob::Area;

use crate::helpers::{json_of, Backend, TestApp, ADMIN_PASSWORD};
use crate::vice::Vice;

/// Runs a tool that makes a test image; the test cannot go on without it.
fn run(program: &str, args: &[&str], folder: &Path) {
    let output = Command::new(program)
        .args(args)
        .current_dir(folder)
        .output()
        .unwrap_or_else(|error| {
            panic!("{program} is not installed ({error}); scripts/setup.sh installs it")
        });
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn qemu_img(folder: &Path, args: &[&str]) {
    let mut all = vec!["create", "-q"];
    all.extend_from_slice(args);
    run("qemu-img", &all, folder);
}

/// Writes an OVA with Python's tarfile: `entries` are (name, file on disk
/// or None for a symlink to /etc/passwd), in order.
fn tar(folder: &Path, archive: &str, entries: &[(&str, Option<&str>)]) {
    let mut script = String::from("import tarfile, sys\nwith tarfile.open(sys.argv[1], 'w', format=tarfile.USTAR_FORMAT) as t:\n");
    for (name, file) in entries {
        match file {
            // The name is set after gettarinfo, which would strip a leading '/'.
            Some(file) => script.push_str(&format!(
                "    i = t.gettarinfo({file:?}); i.name = {name:?}; t.addfile(i, open({file:?}, 'rb'))\n"
            )),
            None => script.push_str(&format!(
                "    i = tarfile.TarInfo({name:?}); i.type = tarfile.SYMTYPE; i.linkname = '/etc/passwd'; t.addfile(i)\n"
            )),
        }
    }
    run("python3", &["-c", &script, archive], folder);
}

const DESCRIPTOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:href="disk1.vmdk" ovf:id="file1"/></References>
  <DiskSection><Info>Disks</Info>
    <Disk ovf:capacity="32" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1"/>
  </DiskSection>
  <NetworkSection><Info>Networks</Info><Network ovf:name="VM Network"/></NetworkSection>
  <VirtualSystem ovf:id="depot-appliance"><Info>A VM</Info>
    <ProductSection><Info>Product</Info><Product>Depot Test Appliance</Product><Vendor>Depot</Vendor><Version>1.2.3</Version></ProductSection>
    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest"><Info>OS</Info></OperatingSystemSection>
    <VirtualHardwareSection><Info>Hardware</Info>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Makes every file of the corpus in `folder`.
fn corpus(folder: &Path) {
    std::fs::write(folder.join("raw.img"), vec![0u8; 1 << 20]).unwrap();
    for (name, label) in [("gpt.img", "gpt"), ("mbr.img", "msdos")] {
        std::fs::write(folder.join(name), vec![0u8; 4 << 20]).unwrap();
        run(
            "parted",
            &[
                "-s", name, "mklabel", label, "mkpart", "primary", "1MiB", "3MiB",
            ],
            folder,
        );
    }
    qemu_img(folder, &["-f", "qcow2", "v3.qcow2", "64M"]);
    qemu_img(
        folder,
        &["-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "64M"],
    );
    qemu_img(folder, &["-f", "vmdk", "sparse.vmdk", "32M"]);
    qemu_img(
        folder,
        &[
            "-f",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "disk1.vmdk",
            "32M",
        ],
    );
    qemu_img(folder, &["-f", "vpc", "dynamic.vhd", "32M"]);
    qemu_img(
        folder,
        &["-f", "vpc", "-o", "subformat=fixed", "fixed.vhd", "32M"],
    );
    qemu_img(folder, &["-f", "vhdx", "disk.vhdx", "32M"]);
    std::fs::create_dir_all(folder.join("iso-root")).unwrap();
    std::fs::write(folder.join("iso-root/readme.txt"), "hello").unwrap();
    run(
        "genisoimage",
        &["-quiet", "-V", "DEPOT_LABEL", "-o", "media.iso", "iso-root"],
        folder,
    );
    // Refused ones.
    qemu_img(folder, &["-f", "qcow2", "base.qcow2", "16M"]);
    qemu_img(
        folder,
        &[
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "backed.qcow2",
        ],
    );
    qemu_img(
        folder,
        &[
            "-f",
            "qcow2",
            "-o",
            "data_file=data.raw",
            "datafile.qcow2",
            "16M",
        ],
    );
    qemu_img(folder, &["-f", "qed", "old.qed", "16M"]);
    qemu_img(
        folder,
        &[
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "flat.vmdk",
            "16M",
        ],
    );
    // An ISO whose system area starts with a qcow2 header: two formats at once.
    let mut polyglot = std::fs::read(folder.join("media.iso")).unwrap();
    let qcow2 = std::fs::read(folder.join("base.qcow2")).unwrap();
    polyglot[..512].copy_from_slice(&qcow2[..512]);
    std::fs::write(folder.join("polyglot.iso"), polyglot).unwrap();

    // OVAs.
    std::fs::write(folder.join("appliance.ovf"), DESCRIPTOR).unwrap();
    let manifest = format!(
        "SHA256(appliance.ovf)= {}\nSHA256(disk1.vmdk)= {}\n",
        sha256_file(&folder.join("appliance.ovf")),
        sha256_file(&folder.join("disk1.vmdk"))
    );
    std::fs::write(folder.join("appliance.mf"), manifest).unwrap();
    std::fs::write(
        folder.join("wrong.mf"),
        format!(
            "SHA256(appliance.ovf)= {}\nSHA256(disk1.vmdk)= {}\n",
            sha256_file(&folder.join("appliance.ovf")),
            "0".repeat(64)
        ),
    )
    .unwrap();
    let ovf = Some("appliance.ovf");
    let mf = Some("appliance.mf");
    let disk = Some("disk1.vmdk");
    tar(
        folder,
        "good.ova",
        &[
            ("appliance.ovf", ovf),
            ("appliance.mf", mf),
            ("disk1.vmdk", disk),
        ],
    );
    tar(
        folder,
        "nomanifest.ova",
        &[("appliance.ovf", ovf), ("disk1.vmdk", disk)],
    );
    tar(
        folder,
        "badmanifest.ova",
        &[
            ("appliance.ovf", ovf),
            ("appliance.mf", Some("wrong.mf")),
            ("disk1.vmdk", disk),
        ],
    );
    tar(
        folder,
        "escape.ova",
        &[("appliance.ovf", ovf), ("../disk1.vmdk", disk)],
    );
    tar(
        folder,
        "absolute.ova",
        &[("appliance.ovf", ovf), ("/tmp/disk1.vmdk", disk)],
    );
    tar(
        folder,
        "link.ova",
        &[("appliance.ovf", ovf), ("disk1.vmdk", None)],
    );
    tar(
        folder,
        "twice.ova",
        &[
            ("appliance.ovf", ovf),
            ("disk1.vmdk", disk),
            ("disk1.vmdk", disk),
        ],
    );
    tar(
        folder,
        "disk-first.ova",
        &[("disk1.vmdk", disk), ("appliance.ovf", ovf)],
    );
    tar(folder, "missing-disk.ova", &[("appliance.ovf", ovf)]);
    tar(
        folder,
        "bad-disk.ova",
        &[("appliance.ovf", ovf), ("disk1.vmdk", Some("backed.qcow2"))],
    );
    // A descriptor the inspector does not see as one (past a long comment):
    // raw bytes to it, refused under a package's name.
    let envelope = DESCRIPTOR.split_once('\n').unwrap().1;
    let prolog = format!("<?xml version='1.0'?><!--{}-->{envelope}", "x".repeat(5000));
    std::fs::write(folder.join("prolog.ovf"), prolog).unwrap();
}

async fn upload_file(app: &TestApp, folder: &Path, name: &str) -> (u16, Value) {
    let bytes = std::fs::read(folder.join(name)).unwrap();
    let response = app.upload("admin", ADMIN_PASSWORD, name, bytes).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn every_format_is_told_by_its_bytes(#[case] backend: Backend) {
    let folder = tempfile::tempdir().unwrap();
    corpus(folder.path());
    let app = TestApp::spawn(backend).await;
    // (file, format, detail contains, virtual size)
    let accepted: [(&str, &str, &str, Option<i64>); 12] = [
        ("raw.img", "raw", "raw", Some(1 << 20)),
        ("gpt.img", "raw", "GPT", Some(4 << 20)),
        ("mbr.img", "raw", "MBR", Some(4 << 20)),
        ("v3.qcow2", "qcow2", "qcow2 v3", Some(64 << 20)),
        ("v2.qcow2", "qcow2", "qcow2 v2", Some(64 << 20)),
        ("sparse.vmdk", "vmdk", "monolithicSparse", Some(32 << 20)),
        ("disk1.vmdk", "vmdk", "streamOptimized", Some(32 << 20)),
        ("dynamic.vhd", "vhd", "vhd dynamic", Some(-1)),
        ("fixed.vhd", "vhd", "vhd fixed", Some(-1)),
        // Its size is in a metadata region past the first MiB, read on the way.
        ("disk.vhdx", "vhdx", "vhdx", Some(32 << 20)),
        ("media.iso", "iso", "iso", None),
        ("good.ova", "ova", "streamOptimized", Some(32 << 20)),
    ];
    for (file, format, detail, virtual_size) in accepted {
        let (status, body) = upload_file(&app, folder.path(), file).await;
        assert_eq!(status, 201, "{file}: {body}");
        let image = &body["images"][0];
        assert_eq!(image["format"], format, "{file}: {image}");
        let shown = image["inspection"]["detail"].as_str().unwrap_or_default();
        assert!(shown.contains(detail), "{file}: detail {shown}");
        match virtual_size {
            // A VHD's size is rounded to its CHS geometry: about 32 MiB.
            Some(-1) => {
                let size = image["virtual_size"].as_i64().unwrap_or(0);
                assert!((31 << 20..=33 << 20).contains(&size), "{file}: {image}");
            }
            Some(size) => assert_eq!(image["virtual_size"], size, "{file}: {image}"),
            None => assert!(image["virtual_size"].is_null(), "{file}: {image}"),
        }
    }
    let (_, iso) = upload_file(&app, folder.path(), "media.iso").await;
    assert_eq!(
        iso["images"][0]["inspection"]["volume_label"],
        "DEPOT_LABEL"
    );

    // The OVF descriptor's metadata became data: shown, and queried through MWS.
    let (_, ova) = upload_file(&app, folder.path(), "nomanifest.ova").await;
    let ova = &ova["images"][0];
    assert_eq!(ova["inspection"]["cpus"], 2, "{ova}");
    assert_eq!(ova["inspection"]["memory_mib"], 2048);
    assert_eq!(ova["inspection"]["product"], "Depot Test Appliance");
    assert_eq!(ova["inspection"]["vendor"], "Depot");
    assert_eq!(ova["inspection"]["product_version"], "1.2.3");
    assert_eq!(ova["inspection"]["networks"], json!(["VM Network"]));
    assert_eq!(ova["mws"]["os_type"], "ubuntu64Guest");
    let query =
        serde_json::to_string(&json!({"cpus": 2, "product": "Depot Test Appliance"})).unwrap();
    let found: Value = json_of(
        reqwest::Client::new()
            .get(app.url("/mws/rest/images"))
            .query(&[("api-version", "3"), ("query", query.as_str())])
            .basic_auth("admin", Some(ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(found["totalCount"], 2, "{found}");

    // The catalog page filters by detected format, and its search finds
    // what inspection found (an ISO's volume label, an appliance's product).
    let admin = Some(("admin", ADMIN_PASSWORD));
    let (status, qcow2) = app.page(admin, "/?mine=true&format=qcow2").await;
    assert_eq!(status, 200);
    assert!(
        qcow2.contains("v3.qcow2") && qcow2.contains("v2.qcow2"),
        "{qcow2}"
    );
    assert!(!qcow2.contains("raw.img") && !qcow2.contains("media.iso"));
    let (_, labelled) = app.page(admin, "/?mine=true&q=DEPOT_LABEL").await;
    assert!(labelled.contains("media.iso") && !labelled.contains("raw.img"));
    let (_, product) = app.page(admin, "/?mine=true&q=Test+Appliance").await;
    assert!(product.contains("good.ova") && !product.contains("media.iso"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn unsafe_files_are_refused_and_leave_nothing(#[case] backend: Backend) {
    let folder = tempfile::tempdir().unwrap();
    corpus(folder.path());
    let app = TestApp::spawn(backend).await;
    let refused = [
        ("backed.qcow2", "backing file"),
        ("datafile.qcow2", "data file"),
        ("old.qed", "QED"),
        ("flat.vmdk", "names"),
        ("polyglot.iso", "both a qcow2 image and an ISO 9660 image"),
        ("badmanifest.ova", "manifest"),
        ("escape.ova", "not a plain name"),
        ("absolute.ova", "not a plain name"),
        ("link.ova", "not a plain file"),
        ("twice.ova", "two entries"),
        ("disk-first.ova", "first entry"),
        ("missing-disk.ova", "does not hold"),
        ("bad-disk.ova", "backing file"),
        ("prolog.ovf", "package"),
    ];
    for (file, reason) in refused {
        let (status, body) = upload_file(&app, folder.path(), file).await;
        assert_eq!(status, 400, "{file}: {body}");
        let message = body["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.to_lowercase().contains(&reason.to_lowercase()),
            "{file}: {message}"
        );
    }
    assert!(
        app.stored(Area::Blobs).await.is_empty(),
        "a refused file was kept"
    );
    // A refused upload's staged object goes in the background.
    let left = app.stored_once_settled(Area::Staging).await;
    assert!(left.is_empty(), "{left:?}");
    let listed: Value = json_of(
        reqwest::Client::new()
            .get(app.url("/mws/rest/images?api-version=3"))
            .basic_auth("admin", Some(ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(listed["totalCount"], 0, "{listed}");

    // Uploaded under another name, the hidden package is raw bytes; nor may
    // it be renamed a package afterwards.
    let hidden = std::fs::read(folder.path().join("prolog.ovf")).unwrap();
    let uploaded = app
        .upload("admin", ADMIN_PASSWORD, "prolog.img", hidden)
        .await;
    assert_eq!(uploaded.status(), 201);
    let uploaded: Value = uploaded.json().await.unwrap();
    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    let admin = app::model::Viewer::User(admin);
    let id = uploaded["images"][0]["id"].as_i64().unwrap();
    let stored = app.core.get_image(&admin, id).await.unwrap();
    for name in ["prolog.ova", "prolog.OVF"] {
        let edit = app::model::ImageEdit {
            name: name.into(),
            label: stored.label.clone(),
            description: stored.description.clone(),
            public: None,
            version: stored.version,
        };
        let refused = app.core.edit_image(&admin, id, edit).await.unwrap_err();
        assert!(refused.to_string().contains("package"), "{name}: {refused}");
    }
    app.core.delete_image(&admin, id).await.unwrap();
    app.core
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();

    // ViCE: bytes that contradict the declared content type are refused too.
    let vice = Vice::new(&app, "admin", ADMIN_PASSWORD);
    let (_, image) = vice
        .json(
            Method::POST,
            "/images",
            Some(&json!({"title": "declared", "contenttype": "disk-qcow2"})),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new().part(
        "upfile",
        reqwest::multipart::Part::bytes(std::fs::read(folder.path().join("raw.img")).unwrap())
            .file_name("raw.img"),
    );
    let response = vice
        .request(Method::POST, &format!("/image/{id}/file"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("declared as qcow2"));
    assert!(app.stored(Area::Blobs).await.is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn inspected_fields_filter_and_ovfs_sync_with_their_disks(#[case] backend: Backend) {
    let folder = tempfile::tempdir().unwrap();
    corpus(folder.path());
    let app = TestApp::spawn(backend).await;
    let token = app.vss_token("admin", ADMIN_PASSWORD).await;
    let client = reqwest::Client::new();
    for file in ["media.iso", "good.ova"] {
        assert_eq!(upload_file(&app, folder.path(), file).await.0, 201);
    }
    // VSS filters on what inspection found, though its items do not show it.
    let isos: Value = json_of(
        client
            .get(app.url("/v2/user/image/iso?filter=volume_label,eq,DEPOT_LABEL&expand=1"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(isos["meta"]["count"], 1, "{isos}");
    let none: Value = json_of(
        client
            .get(app.url("/v2/user/image/iso?filter=volume_label,eq,OTHER"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(none["meta"]["count"], 0, "{none}");
    let vms: Value = json_of(
        client
            .get(app.url("/v2/user/image/vm?filter=cpus,ge,2&filter=os_type,eq,ubuntu64Guest"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(vms["meta"]["count"], 1, "{vms}");

    // An OVF in the personal store is synced with its disk, as one package.
    let dav = |method: &str, path: &str, body: Option<Vec<u8>>| {
        let mut request = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&format!("/store/{path}")),
            )
            .basic_auth("admin", Some(ADMIN_PASSWORD));
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send()
    };
    assert_eq!(dav("MKCOL", "vms/", None).await.unwrap().status(), 201);
    let descriptor = std::fs::read(folder.path().join("appliance.ovf")).unwrap();
    let disk = std::fs::read(folder.path().join("disk1.vmdk")).unwrap();
    // A colon in its name (a drive on Windows) is left out of the package.
    for (name, bytes) in [
        ("appliance:1.ovf", descriptor),
        ("disk1.vmdk", disk.clone()),
    ] {
        let put = dav("PUT", &format!("vms/{name}"), Some(bytes))
            .await
            .unwrap();
        assert!(put.status().is_success(), "{name}: {}", put.status());
    }
    let submitted: Value = json_of(
        client
            .patch(app.url("/v2/user/image/vm"))
            .bearer_auth(&token),
    )
    .await;
    let request = submitted["data"]["request"]["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status: Value = json_of(
            client
                .get(app.url(&format!("/v2/request/image_sync/{request}")))
                .bearer_auth(&token),
        )
        .await;
        if status["data"]["status"] == "PROCESSED" {
            assert_eq!(status["data"]["added"], 1, "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let query = serde_json::to_string(&json!({"name": "appliance:1.ovf"})).unwrap();
    let found: Value = json_of(
        client
            .get(app.url("/mws/rest/images"))
            .query(&[("api-version", "3"), ("query", query.as_str())])
            .basic_auth("admin", Some(ADMIN_PASSWORD)),
    )
    .await;
    let id = found["results"][0]["id"].as_str().unwrap().to_owned();
    let package = client
        .get(app.url(&format!("/api/images/{id}/download")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut archive = tar::Archive::new(std::io::Cursor::new(package.to_vec()));
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        entries.push((name, bytes));
    }
    assert_eq!(entries[0].0, "appliance_1.ovf");
    assert_eq!(entries[1], ("disk1.vmdk".to_owned(), disk));
}
