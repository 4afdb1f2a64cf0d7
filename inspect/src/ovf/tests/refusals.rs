//! What is refused, and how the refusal reads: entity tricks, hrefs that
//! leave the archive, documents too deep, too wide or too large.

use super::*;

#[test]
fn a_doctype_is_refused() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Envelope><References><File href="&lol3;"/></References></Envelope>"#;
    assert_eq!(refused(laughs), "a descriptor with a DOCTYPE");
    let external = r#"<?xml version="1.0"?>
<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Envelope><NetworkSection><Network name="&xxe;"/></NetworkSection></Envelope>"#;
    assert_eq!(refused(external), "a descriptor with a DOCTYPE");
    assert_eq!(
        refused("<!doctype Envelope><Envelope/>"),
        "a descriptor with a DOCTYPE"
    );
}

#[test]
fn an_undefined_entity_is_unreadable() {
    let reason = refused(&envelope(
        "<VirtualSystem><Name>&xxe;</Name></VirtualSystem>",
    ));
    assert!(reason.starts_with("unreadable descriptor: "), "{reason}");
    let reason = refused(&with_file("&xxe;"));
    assert!(reason.starts_with("unreadable descriptor: "), "{reason}");
}

#[test]
fn an_absolute_href_is_refused() {
    for href in ["/etc/passwd", "/disk.vmdk", "C:\\disk.vmdk", "C:/disk.vmdk"] {
        let reason = refused(&with_file(href));
        assert!(
            reason.starts_with("a file reference is not a plain name: "),
            "{href}: {reason}"
        );
    }
}

#[test]
fn an_href_with_dot_dot_is_refused() {
    for href in [
        "../disk.vmdk",
        "..",
        "disks/../../disk.vmdk",
        "disk.vmdk/..",
        "%2e%2e/disk.vmdk",
        "%2E%2E%2Fdisk.vmdk",
    ] {
        let reason = refused(&with_file(href));
        assert!(
            reason.starts_with("a file reference is not a plain name: "),
            "{href}: {reason}"
        );
    }
}

#[test]
fn a_url_href_is_refused() {
    for href in [
        "http://example.com/disk.vmdk",
        "https://example.com/disk.vmdk",
        "file:///etc/passwd",
        "file:disk.vmdk",
        "smb://server/share/disk.vmdk",
        "//server/share/disk.vmdk",
        "nfs%3A//server/disk.vmdk",
    ] {
        let reason = refused(&with_file(href));
        assert!(
            reason.starts_with("a file reference is not a plain name: "),
            "{href}: {reason}"
        );
    }
}

#[test]
fn other_unplain_hrefs_are_refused() {
    for href in [
        "",
        "disks\\disk.vmdk",
        "disks//disk.vmdk",
        "./disk.vmdk",
        "disks/",
        "disk&#10;.vmdk",
        "disk%00.vmdk",
        "disk%ff.vmdk",
        "evil\u{202E}kdmv.iso",
    ] {
        let reason = refused(&with_file(href));
        assert!(
            reason.starts_with("a file reference is not a plain name: "),
            "{href:?}: {reason}"
        );
        assert!(!reason.contains('\u{202E}'), "{reason}");
    }
    // A listed file must name something.
    let reason = refused(&envelope(
        r#"<References><File ovf:id="file1"/></References>"#,
    ));
    assert!(
        reason.starts_with("a file reference is not a plain name"),
        "{reason}"
    );
    // A File outside References is checked too, though not listed.
    let reason = refused(&envelope(
        r#"<VirtualSystem><File ovf:href="/etc/shadow"/></VirtualSystem>"#,
    ));
    assert!(
        reason.starts_with("a file reference is not a plain name"),
        "{reason}"
    );
    // Every href of a File counts, whatever its prefix.
    let reason = refused(&envelope(
        r#"<References><File ovf:href="disk.vmdk" vmw:href="/dev/sda"/></References>"#,
    ));
    assert!(
        reason.starts_with("a file reference is not a plain name"),
        "{reason}"
    );
}

/// What one reader takes for the disk and another for a certificate, or a
/// fragment: refused rather than read one way.
#[test]
fn a_file_read_two_ways_is_refused() {
    for file in [
        r#"<File href="disk.img" ovf:href="evil.cert" ovf:id="file1"/>"#,
        r#"<File ovf:href="disk.img" vmw:href="disk.img" ovf:id="file1"/>"#,
        r#"<File ovf:href="disk.img" ovf:id="file1" vmw:id="file2"/>"#,
    ] {
        let reason = refused(&envelope(&format!("<References>{file}</References>")));
        assert!(reason.contains("twice"), "{file}: {reason}");
    }
    let reason = refused(&envelope(
        r#"<References><File ovf:href="disk.img" ovf:id="file1"/></References>
           <DiskSection><Disk ovf:diskId="d" ovf:fileRef="file1" vmw:fileRef="file2"/></DiskSection>"#,
    ));
    assert!(reason.contains("fileRef twice"), "{reason}");
    for href in ["evil.cert#disk.vmdk", "evil.cert?disk.vmdk"] {
        let reason = refused(&with_file(href));
        assert!(
            reason.starts_with("a file reference is not a plain name"),
            "{href}: {reason}"
        );
    }
}

/// A reader that honours `compression` or `chunkSize` opens a disk that is
/// not the bytes inspected.
#[test]
fn a_compressed_or_chunked_file_is_refused() {
    let reason = refused(&envelope(
        r#"<References><File ovf:href="disk.vmdk" ovf:id="file1" ovf:compression="gzip"/></References>"#,
    ));
    assert!(reason.contains("compressed (\"gzip\")"), "{reason}");
    let reason = refused(&envelope(
        r#"<References><File ovf:href="disk.vmdk" ovf:id="file1" ovf:chunkSize="1048576"/></References>"#,
    ));
    assert!(reason.contains("chunks"), "{reason}");
    // Stored as it is, said in so many words: read as before.
    let metadata = parsed(&envelope(
        r#"<References><File ovf:href="disk.vmdk" ovf:id="file1" ovf:compression="identity"/></References>"#,
    ));
    assert_eq!(metadata.files.len(), 1);
}

#[test]
fn too_deep_a_document_is_refused() {
    // The envelope and 63 levels inside it: 64 in all.
    let deep = envelope(&("<a>".repeat(63) + &"</a>".repeat(63)));
    parsed(&deep);
    let deeper = envelope(&("<a>".repeat(64) + &"</a>".repeat(64)));
    assert_eq!(
        refused(&deeper),
        "the descriptor nests elements deeper than 64 levels"
    );
    let deeper = envelope(&("<a>".repeat(63) + "<a/>" + &"</a>".repeat(63)));
    assert_eq!(
        refused(&deeper),
        "the descriptor nests elements deeper than 64 levels"
    );
    // Far deeper input fails as fast, without recursion.
    let abyss = envelope(&"<a>".repeat(1_000_000));
    assert!(refused(&abyss).contains("deeper than 64"));
}

#[test]
fn too_many_entries_are_refused() {
    let files = |count: usize| {
        let files: String = (0..count)
            .map(|i| format!("<File ovf:href=\"f{i}.vmdk\" ovf:id=\"file{i}\"/>"))
            .collect();
        envelope(&format!("<References>{files}</References>"))
    };
    assert_eq!(parsed(&files(1024)).files.len(), 1024);
    assert_eq!(
        refused(&files(1025)),
        "the descriptor lists more than 1024 files"
    );

    let disks: String = (0..1025)
        .map(|i| format!("<Disk ovf:capacity=\"1\" ovf:diskId=\"d{i}\"/>"))
        .collect();
    let reason = refused(&envelope(&format!("<DiskSection>{disks}</DiskSection>")));
    assert_eq!(reason, "the descriptor lists more than 1024 disks");

    let networks: String = (0..1025)
        .map(|i| format!("<Network ovf:name=\"n{i}\"/>"))
        .collect();
    let reason = refused(&envelope(&format!(
        "<NetworkSection>{networks}</NetworkSection>"
    )));
    assert_eq!(reason, "the descriptor lists more than 1024 networks");

    let reason = refused(&with_items(&"<Item/>".repeat(1025)));
    assert_eq!(reason, "the descriptor lists more than 1024 hardware items");
}

#[test]
fn a_root_other_than_envelope_is_refused() {
    for xml in [
        "<html><body/></html>",
        r#"<ovf:VirtualSystem xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"/>"#,
    ] {
        assert_eq!(
            refused(xml),
            "not an OVF descriptor: the root is not Envelope"
        );
    }
    assert!(refused("").starts_with("not an OVF descriptor"));
    assert!(refused("<?xml version=\"1.0\"?>\n<!-- nothing -->\n").starts_with("not an OVF"));
}

#[test]
fn malformed_xml_is_unreadable() {
    let cases: [&[u8]; 10] = [
        b"<Envelope><References></Envelope>",
        b"<Envelope><References>",
        b"<Envelope></References></Envelope>",
        b"<Envelope><File ovf:href=disk.vmdk/></Envelope>",
        b"<Envelope><File ovf:href=\"a.vmdk\" ovf:href=\"b.vmdk\"/></Envelope>",
        b"<Envelope>&#0;</Envelope>",
        b"<Envelope>fish & chips</Envelope>",
        b"<Envelope/><Envelope/>",
        b"<Envelope/>trailing text",
        b"<Envelope><Name>\xff\xfe</Name></Envelope>",
    ];
    for xml in cases {
        let reason = match parse(xml) {
            Ok(metadata) => panic!("accepted {:?}: {metadata:?}", String::from_utf8_lossy(xml)),
            Err(reason) => reason,
        };
        assert!(
            reason.starts_with("unreadable descriptor: "),
            "{:?}: {reason}",
            String::from_utf8_lossy(xml)
        );
    }
}

#[test]
fn too_large_a_descriptor_is_refused() {
    let mut xml = envelope("").into_bytes();
    xml.resize(MAX_DESCRIPTOR + 1, b' ');
    assert_eq!(
        parse(&xml),
        Err("the descriptor is larger than 4 MiB".into())
    );
}

#[test]
fn messages_do_not_echo_unsafe_text() {
    let href = format!("/\u{202E}\u{1b}{}", "x".repeat(500));
    let reason = refused(&with_file(&href));
    assert!(
        !reason.contains('\u{202E}') && !reason.contains('\u{1b}'),
        "{reason}"
    );
    assert!(reason.chars().count() < 200, "{reason}");
}

/// quick-xml's own check for an attribute given twice compares each with
/// every one before it: elements are held to a few, so that 300,000 in one
/// are refused at once instead of taking minutes.
#[test]
fn an_element_with_too_many_attributes_is_refused() {
    let many: String = (0..300_000).map(|n| format!(" a{n}=\"\"")).collect();
    let reason = refused(&envelope(&format!(
        "<References><File ovf:href=\"d.vmdk\" ovf:id=\"f\"{many}/></References>"
    )));
    assert!(reason.contains("more than 64 attributes"), "{reason}");
}
