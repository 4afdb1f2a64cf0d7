//! What is read from a descriptor: files, disks, OS, hardware, units, text.

use super::*;

#[test]
fn a_minimal_descriptor_with_prefixed_elements_lists_its_files() {
    let xml = r#"<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
        <ovf:References>
            <ovf:File ovf:href="disk.vmdk" ovf:size="512"/>
            <ovf:File ovf:href="disks/data.vmdk"/>
        </ovf:References>
    </ovf:Envelope>"#;
    assert_eq!(
        parsed(xml),
        OvfMetadata {
            files: vec![
                OvfFile {
                    href: "disk.vmdk".into(),
                    size: Some(512),
                },
                OvfFile {
                    href: "disks/data.vmdk".into(),
                    size: None,
                },
            ],
            ..OvfMetadata::default()
        }
    );
    assert_eq!(parsed("<Envelope/>"), OvfMetadata::default());
}

#[test]
fn the_os_falls_back_to_the_description_then_the_cim_id() {
    let os = |section: &str| {
        parsed(&envelope(&format!(
            "<VirtualSystem>{section}</VirtualSystem>"
        )))
        .os_type
    };
    assert_eq!(
        os(r#"<OperatingSystemSection ovf:id="94" ovf:osType="ubuntu64Guest"/>"#),
        Some("ubuntu64Guest".into())
    );
    assert_eq!(
        os(r#"<OperatingSystemSection ovf:id="101"><Description>
            Red Hat Enterprise Linux 9
        </Description></OperatingSystemSection>"#),
        Some("Red Hat Enterprise Linux 9".into())
    );
    assert_eq!(
        os(r#"<OperatingSystemSection ovf:id="36"/>"#),
        Some("36".into())
    );
    // Only the first virtual system describes the appliance.
    let xml = envelope(
        r#"<VirtualSystemCollection>
            <VirtualSystem><OperatingSystemSection ovf:id="1" vmw:osType="first"/></VirtualSystem>
            <VirtualSystem><OperatingSystemSection ovf:id="2" vmw:osType="second"/>
                <VirtualHardwareSection><Item><rasd:ResourceType>3</rasd:ResourceType>
                <rasd:VirtualQuantity>8</rasd:VirtualQuantity></Item></VirtualHardwareSection>
            </VirtualSystem>
        </VirtualSystemCollection>"#,
    );
    let metadata = parsed(&xml);
    assert_eq!(metadata.os_type, Some("first".into()));
    assert_eq!(metadata.cpus, None);
}

#[test]
fn hardware_sums_processors_and_converts_memory_units() {
    let items = [
        item(3, "2", None),
        item(3, "6", None),
        item(4, "8", Some("byte * 2^30")),
    ]
    .concat();
    let metadata = parsed(&with_items(&items));
    assert_eq!(metadata.cpus, Some(8));
    assert_eq!(metadata.memory_mib, Some(8192));
    for (units, mib) in [
        ("byte * 2^20", 4096),
        ("byte*2^20", 4096),
        ("MegaBytes", 4096),
        ("GigaBytes", 4096 << 10),
        ("byte * 1024", 4),
        ("byte", 0),
    ] {
        let metadata = parsed(&with_items(&item(4, "4096", Some(units))));
        assert_eq!(metadata.memory_mib, Some(mib), "{units}");
    }
    // Unknown or missing units leave the memory unknown, not guessed.
    for units in [Some("furlongs"), Some("byte * 2^-1"), None] {
        let metadata = parsed(&with_items(&item(4, "4096", units)));
        assert_eq!(metadata.memory_mib, None, "{units:?}");
    }
    // A second hardware section (another hypervisor's) is not added.
    let xml = envelope(&format!(
        "<VirtualSystem><VirtualHardwareSection>{}</VirtualHardwareSection>\
         <VirtualHardwareSection>{}</VirtualHardwareSection></VirtualSystem>",
        item(3, "2", None),
        item(3, "2", None)
    ));
    assert_eq!(parsed(&xml).cpus, Some(2));
}

#[test]
fn disks_find_their_files_by_id_in_any_order() {
    let xml = envelope(
        r#"<DiskSection>
            <Disk ovf:capacity="1048576" ovf:diskId="a" ovf:fileRef="file2"/>
            <Disk ovf:capacity="2" ovf:capacityAllocationUnits="MegaBytes" ovf:diskId="b"/>
            <Disk ovf:capacity="${disk.size}" ovf:diskId="c" ovf:fileRef="nowhere"/>
        </DiskSection>
        <References>
            <File ovf:href="one.vmdk" ovf:id="file1"/>
            <File ovf:href="two.vmdk" ovf:id="file2"/>
        </References>"#,
    );
    assert_eq!(
        parsed(&xml).disks,
        vec![
            OvfDisk {
                capacity_bytes: Some(1048576),
                file: Some("two.vmdk".into()),
            },
            OvfDisk {
                capacity_bytes: Some(2 << 20),
                file: None,
            },
            OvfDisk {
                capacity_bytes: None,
                file: None,
            },
        ]
    );
}

#[test]
fn arithmetic_overflows_are_unknown_not_wrapped() {
    let disks = parsed(&with_disk("18446744073709551615", "byte * 2^30")).disks;
    assert_eq!(disks[0].capacity_bytes, None);
    let disks = parsed(&with_disk("16", "byte * 2^64")).disks;
    assert_eq!(disks[0].capacity_bytes, None);
    let disks = parsed(&with_disk("18446744073709551616", "byte")).disks;
    assert_eq!(disks[0].capacity_bytes, None);
    let disks = parsed(&with_disk("18446744073709551615", "byte")).disks;
    assert_eq!(disks[0].capacity_bytes, Some(u64::MAX));

    let memory = |quantity: &str, units: &str| {
        parsed(&with_items(&item(4, quantity, Some(units)))).memory_mib
    };
    assert_eq!(memory("18446744073709551615", "byte * 2^30"), None);
    assert_eq!(memory("1", "byte * 2^70"), None);
    // The product is exact: a size in MiB that fits is kept.
    assert_eq!(
        memory("18446744073709551615", "byte * 2^20"),
        Some(u64::MAX)
    );

    let cpus = [item(3, "4294967295", None), item(3, "1", None)].concat();
    assert_eq!(parsed(&with_items(&cpus)).cpus, None);
    let cpus = [item(3, "18446744073709551615", None), item(3, "1", None)].concat();
    assert_eq!(parsed(&with_items(&cpus)).cpus, None);
    // One unknown term makes the sum unknown.
    let cpus = [item(3, "2", None), item(3, "many", None)].concat();
    assert_eq!(parsed(&with_items(&cpus)).cpus, None);
}

#[test]
fn unit_names_and_programmatic_units() {
    assert_eq!(unit_bytes("byte"), Some(1));
    assert_eq!(unit_bytes("byte * 2^30"), Some(1 << 30));
    assert_eq!(unit_bytes(" Byte*2^10*1000 "), Some(1024 * 1000));
    assert_eq!(unit_bytes("byte * 10^9"), Some(1_000_000_000));
    assert_eq!(unit_bytes("KiloBytes"), Some(1024));
    assert_eq!(unit_bytes("GB"), Some(1 << 30));
    assert_eq!(unit_bytes("byte * 2^64"), None);
    assert_eq!(unit_bytes("byte * 2^4294967296"), None);
    assert_eq!(unit_bytes("hertz * 10^6"), None);
    assert_eq!(unit_bytes("byte * "), None);
    assert_eq!(unit_bytes(""), None);
}

#[test]
fn plain_relative_names_are_kept_as_written() {
    for href in [
        "disk1.vmdk",
        "disks/disk1.vmdk",
        "a/b/c.vmdk",
        "My Appliance-disk1.vmdk",
        "my%20disk.vmdk",
        "диск.vmdk",
    ] {
        let files = parsed(&with_file(href)).files;
        assert_eq!(files[0].href, href);
    }
    // A namespace declaration named like an attribute is no href.
    let xml =
        envelope(r#"<References><File xmlns:href="urn:x" ovf:href="disk.vmdk"/></References>"#);
    assert_eq!(parsed(&xml).files[0].href, "disk.vmdk");
}

#[test]
fn text_is_unescaped_trimmed_and_cut_at_a_character_boundary() {
    let product = |text: &str| {
        let xml = envelope(&format!(
            "<VirtualSystem><ProductSection><Product>{text}</Product></ProductSection></VirtualSystem>"
        ));
        parsed(&xml).product
    };
    assert_eq!(
        product("  Fish &amp; Chips &#x263A; <![CDATA[<v2>]]>\n"),
        Some("Fish & Chips \u{263A} <v2>".into())
    );
    assert_eq!(
        product("Ubuntu\n        Server<!-- a comment --> LTS"),
        Some("Ubuntu Server LTS".into())
    );
    assert_eq!(product(""), None);
    assert_eq!(product("   "), None);
    // 'é' is two bytes: 1024 bytes end between two of them.
    let long = format!("a{}", "é".repeat(2000));
    let kept = product(&long).unwrap();
    assert_eq!(kept.len(), 1023);
    assert!(long.starts_with(&kept));
    let xml = envelope("<VirtualSystem><ProductSection><Vendor/></ProductSection></VirtualSystem>");
    assert_eq!(parsed(&xml).vendor, None);
}

#[test]
fn control_and_bidi_characters_drop_the_value() {
    let xml = envelope(
        "<NetworkSection><Network ovf:name=\"bad&#27;[31m\"/><Network ovf:name=\"evil\u{202E}krowten\"/>\
         <Network ovf:name=\"good\"/></NetworkSection>\
         <VirtualSystem><OperatingSystemSection ovf:id=\"94\" vmw:osType=\"ubuntu\u{2066}64Guest\">\
         <Description>Ubuntu&#7;</Description></OperatingSystemSection>\
         <ProductSection><Product>\u{200F}Depot</Product><Vendor>AC&#x85;ME</Vendor>\
         <Version>1.0</Version></ProductSection></VirtualSystem>",
    );
    let metadata = parsed(&xml);
    assert_eq!(metadata.networks, vec!["good".to_owned()]);
    // The osType and description are dropped; the CIM id remains.
    assert_eq!(metadata.os_type, Some("94".into()));
    assert_eq!(metadata.product, None);
    assert_eq!(metadata.vendor, None);
    assert_eq!(metadata.version, Some("1.0".into()));
}

#[test]
fn the_first_product_section_wins() {
    let xml = envelope(
        "<VirtualSystem>\
         <ProductSection><Product>Appliance</Product></ProductSection>\
         <ProductSection ovf:class=\"org.example\"><Product>Agent</Product><Vendor>Other</Vendor></ProductSection>\
         </VirtualSystem>",
    );
    let metadata = parsed(&xml);
    assert_eq!(metadata.product, Some("Appliance".into()));
    assert_eq!(metadata.vendor, None);
}

/// Networks are stored and shown with the image: each once, a few at most.
#[test]
fn networks_are_kept_once_and_a_few() {
    let networks: String = (0..1000)
        .map(|n| format!("<Network ovf:name=\"net{}\"/>", n % 100))
        .collect();
    let metadata = parsed(&envelope(&format!(
        "<NetworkSection>{networks}</NetworkSection>"
    )));
    let expected: Vec<String> = (0..64).map(|n| format!("net{n}")).collect();
    assert_eq!(metadata.networks, expected);
}
