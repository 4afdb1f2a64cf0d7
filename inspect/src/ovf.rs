//! OVF descriptors (DMTF DSP0243 1.x and 2.0, as ovftool, VMware and
//! VirtualBox write them) read into [`OvfMetadata`]: the guest OS, CPUs,
//! memory, disks, networks and product the catalog shows and filters on, and
//! the files the appliance is made of.
//!
//! A descriptor is untrusted input that a hypervisor will later follow, so
//! reading it is also checking it:
//!
//! - every `File` reference must be a plain relative name (no absolute path,
//!   `..`, backslash, scheme or URL, also after percent-decoding, since
//!   hypervisors treat an href as a URI), so an appliance can only use files
//!   that lie beside it in its OVA or folder;
//! - a `<!DOCTYPE` is refused outright: without it no entity but the five
//!   predefined ones and character references can exist, which rules out
//!   external entities (XXE) and entity expansion bombs whatever a later
//!   reader of the same bytes does;
//! - the document is read as a stream of events with a bounded stack of
//!   element kinds (no tree, no recursion), at most [`MAX_DEPTH`] deep, with at
//!   most [`MAX_ENTRIES`] files, disks, networks or hardware items, and text
//!   values of at most [`MAX_TEXT`] bytes, so memory and time stay bounded by
//!   the descriptor's size whatever it holds;
//! - text with control or bidirectional formatting characters is dropped
//!   rather than stored, as names and titles are everywhere else in Depot.
//!
//! Element and attribute names are matched on their local part only: the
//! namespaces differ between OVF 1.x (`.../ovf/envelope/1`), 2.0
//! (`.../ovf/envelope/2`), VMware's `vmw` extensions and the CIM `rasd`/`vssd`
//! schemas, and exporters pick their own prefixes.

use std::collections::HashMap;

use crate::is_bidi_control;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::XmlVersion;

/// The largest descriptor read (bigger is refused by the caller).
pub const MAX_DESCRIPTOR: usize = 4 << 20;

/// The most files, disks, networks or hardware items a descriptor may list:
/// real appliances have a handful, and the bound keeps a hostile one from
/// making the metadata (stored and sent to every client) large.
const MAX_ENTRIES: usize = 1024;

/// The longest text value kept, in bytes; longer ones are cut at a character
/// boundary.
const MAX_TEXT: usize = 1024;

/// The deepest element nesting accepted (the envelope is level 1); real
/// descriptors stay under ten.
const MAX_DEPTH: usize = 64;

/// The bytes in a MiB, for memory sizes.
const MIB: u128 = 1 << 20;

/// What an OVF descriptor says about the appliance.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OvfMetadata {
    /// The guest OS: the `ovf:osType` attribute of `OperatingSystemSection` (e.g. "ubuntu64Guest"), else its `<Description>` text, else the CIM id as text.
    pub os_type: Option<String>,
    /// The sum of `VirtualQuantity` of the `ResourceType` 3 (processor) items of the first VirtualSystem's VirtualHardwareSection.
    pub cpus: Option<u32>,
    /// Memory (`ResourceType` 4) in MiB, using `AllocationUnits` (e.g. "byte * 2^20", "MegaBytes", "byte * 2^30", "GigaBytes") — checked arithmetic, None when unknown/overflowing.
    pub memory_mib: Option<u64>,
    /// The disks of `DiskSection`: capacity in bytes (`ovf:capacity` × `ovf:capacityAllocationUnits`, default bytes; checked), and the file they use (the `href` of the `References/File` whose `ovf:id` the disk's `ovf:fileRef` names), if any.
    pub disks: Vec<OvfDisk>,
    /// Network names of `NetworkSection`.
    pub networks: Vec<String>,
    /// `ProductSection`: Product, Vendor, Version (first ProductSection).
    pub product: Option<String>,
    pub vendor: Option<String>,
    pub version: Option<String>,
    /// Every `References/File` `ovf:href`, in order, with its declared `ovf:size` if any.
    pub files: Vec<OvfFile>,
}

/// One disk of the `DiskSection`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OvfDisk {
    /// The capacity the guest sees, in bytes; None when absent, not a number
    /// (a `${property}` reference) or too large for a `u64`.
    pub capacity_bytes: Option<u64>,
    /// The href of the file holding the disk; None for a disk created empty
    /// on import, or one whose `fileRef` names no file.
    pub file: Option<String>,
}

/// One file of the `References` section.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OvfFile {
    /// The file's name relative to the descriptor: checked to be a plain
    /// name, and kept exactly as written so it compares with archive entries.
    pub href: String,
    /// The size the descriptor declares, in bytes.
    pub size: Option<u64>,
}

/// Parses a descriptor; Err is a reason shown to the user ("unreadable descriptor: ...", "not an OVF descriptor: the root is not Envelope", "a file reference is not a plain name: ...").
pub fn parse(descriptor: &[u8]) -> Result<OvfMetadata, String> {
    // The caller bounds what it reads; refusing here too keeps the bound a
    // property of this function for any other caller (and the fuzzer).
    if descriptor.len() > MAX_DESCRIPTOR {
        return Err("the descriptor is larger than 4 MiB".into());
    }
    let mut reader = quick_xml::Reader::from_reader(descriptor);
    let mut parser = Parser::default();
    loop {
        match reader.read_event().map_err(unreadable)? {
            Event::Start(element) => parser.open(&element, false)?,
            Event::Empty(element) => parser.open(&element, true)?,
            Event::End(_) => parser.close()?,
            Event::Text(text) => parser.characters(&text.xml10_content())?,
            Event::CData(data) => parser.characters(&data.xml10_content())?,
            Event::GeneralRef(reference) => parser.reference(&reference)?,
            Event::DocType(_) => return Err("a descriptor with a DOCTYPE".into()),
            Event::Eof => return parser.finish(),
            // Declarations, comments and processing instructions say nothing
            // about the appliance.
            _ => {}
        }
    }
}

/// The element text the parser keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    OsDescription,
    Product,
    Vendor,
    Version,
    ResourceType,
    VirtualQuantity,
    AllocationUnits,
}

/// What an open element is, as far as the metadata is concerned: decided
/// from its local name and its parent's kind, so the stack holds one small
/// value per level rather than names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Envelope,
    References,
    /// A `File` of the `References` section.
    File,
    DiskSection,
    Disk,
    NetworkSection,
    Network,
    VirtualSystemCollection,
    /// A `VirtualSystem`; only the first one in the document describes the
    /// OS and hardware (an appliance of several machines shows its first).
    VirtualSystem {
        first: bool,
    },
    /// The first `OperatingSystemSection` of the first virtual system.
    OperatingSystem,
    /// The first `ProductSection` of the document.
    Product,
    /// A `VirtualHardwareSection`; only the first one of the first virtual
    /// system counts (a system may carry one per hypervisor type, and adding
    /// them up would count its CPUs twice).
    Hardware {
        first: bool,
    },
    /// An `Item` (or OVF 2.0 `StorageItem`, `EthernetPortItem`) of a
    /// hardware section.
    Item {
        first: bool,
    },
    /// An element whose text is kept.
    Text(Field),
    Other,
}

/// A sum over hardware items that becomes unknown as soon as one term is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Total {
    #[default]
    Absent,
    Known(u64),
    Unknown,
}

impl Total {
    /// Adds a term; an unknown term or an overflow makes the whole unknown,
    /// since a partial sum would be a wrong number rather than a missing one.
    fn add(self, term: Option<u64>) -> Self {
        match (self, term) {
            (Total::Unknown, _) | (_, None) => Total::Unknown,
            (Total::Absent, Some(term)) => Total::Known(term),
            (Total::Known(sum), Some(term)) => {
                sum.checked_add(term).map_or(Total::Unknown, Total::Known)
            }
        }
    }

    fn value(self) -> Option<u64> {
        match self {
            Total::Known(value) => Some(value),
            Total::Absent | Total::Unknown => None,
        }
    }
}

/// The text of the current element, kept to at most [`MAX_TEXT`] bytes
/// after leading whitespace however long the element is.
#[derive(Debug, Default)]
struct TextBuffer {
    value: String,
    full: bool,
}

impl TextBuffer {
    fn push(&mut self, chunk: &str) {
        if self.full {
            return;
        }
        let chunk = if self.value.is_empty() {
            chunk.trim_start()
        } else {
            chunk
        };
        let room = MAX_TEXT - self.value.len();
        if chunk.len() <= room {
            self.value.push_str(chunk);
        } else {
            // Once cut, later chunks are not appended: a smaller character
            // fitting the room would leave a hole in the text.
            self.value.push_str(&chunk[..floor_boundary(chunk, room)]);
            self.full = true;
        }
    }

    /// The kept value: XML whitespace (which line breaks and indentation in
    /// element text are) collapsed to single spaces, then cleaned.
    fn finish(self) -> Option<String> {
        let mut collapsed = String::with_capacity(self.value.len());
        let mut in_space = false;
        for c in self.value.chars() {
            if matches!(c, ' ' | '\t' | '\n' | '\r') {
                if !in_space {
                    collapsed.push(' ');
                }
                in_space = true;
            } else {
                collapsed.push(c);
                in_space = false;
            }
        }
        clean(&collapsed)
    }
}

/// The text fields of the current hardware item.
#[derive(Debug, Default)]
struct ItemFields {
    resource_type: Option<String>,
    quantity: Option<String>,
    units: Option<String>,
}

/// The state of one pass over a descriptor.
#[derive(Debug, Default)]
struct Parser {
    /// The kinds of the open elements, outermost first.
    stack: Vec<Tag>,
    root_closed: bool,
    metadata: OvfMetadata,
    /// The `ovf:id` of each of `metadata.files`, in the same order.
    file_ids: Vec<Option<String>>,
    /// The `ovf:fileRef` of each of `metadata.disks`, in the same order:
    /// resolved at the end, since nothing obliges `References` to come first.
    disk_refs: Vec<Option<String>>,
    networks_seen: usize,
    items_seen: usize,
    seen_system: bool,
    seen_operating_system: bool,
    seen_hardware: bool,
    seen_product: bool,
    os_type_attribute: Option<String>,
    os_description: Option<String>,
    os_id: Option<String>,
    item: ItemFields,
    cpus: Total,
    memory: Total,
    text: TextBuffer,
}

impl Parser {
    /// An element starts (and, for `<x/>`, ends at once).
    fn open(&mut self, element: &BytesStart<'_>, empty: bool) -> Result<(), String> {
        if self.root_closed {
            return Err(unreadable("an element after the root element"));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!(
                "the descriptor nests elements deeper than {MAX_DEPTH} levels"
            ));
        }
        let local = element.local_name();
        let name = local.as_ref();
        let tag = self.classify(name)?;
        // Any `File` is checked, not only those of `References`: other tools
        // (and Depot's own store sync) look for files wherever they are.
        if name == "File" {
            self.file(element, tag == Tag::File)?;
        }
        match tag {
            Tag::Disk => self.disk(element)?,
            Tag::Network => self.network(element)?,
            Tag::OperatingSystem => self.operating_system(element)?,
            Tag::Item { first } => {
                self.items_seen += 1;
                if self.items_seen > MAX_ENTRIES {
                    return Err(too_many("hardware items"));
                }
                if first {
                    self.item = ItemFields::default();
                }
            }
            Tag::Text(_) => self.text = TextBuffer::default(),
            _ => {}
        }
        self.stack.push(tag);
        if empty {
            self.close()?;
        }
        Ok(())
    }

    /// What a new element named `name` is, given the open ones.
    fn classify(&mut self, name: &str) -> Result<Tag, String> {
        let Some(&parent) = self.stack.last() else {
            return if name == "Envelope" {
                Ok(Tag::Envelope)
            } else {
                Err("not an OVF descriptor: the root is not Envelope".into())
            };
        };
        // The sections are where DSP0243 puts them; the same names elsewhere
        // (a `Description` in a product property, say) mean something else.
        let tag = match (parent, name) {
            (Tag::Envelope, "References") => Tag::References,
            (Tag::References, "File") => Tag::File,
            (Tag::Envelope, "DiskSection") => Tag::DiskSection,
            (Tag::DiskSection, "Disk") => Tag::Disk,
            (Tag::Envelope, "NetworkSection") => Tag::NetworkSection,
            (Tag::NetworkSection, "Network") => Tag::Network,
            (Tag::Envelope | Tag::VirtualSystemCollection, "VirtualSystemCollection") => {
                Tag::VirtualSystemCollection
            }
            (Tag::Envelope | Tag::VirtualSystemCollection, "VirtualSystem") => {
                let first = !self.seen_system;
                self.seen_system = true;
                Tag::VirtualSystem { first }
            }
            (Tag::VirtualSystem { first: true }, "OperatingSystemSection")
                if !self.seen_operating_system =>
            {
                self.seen_operating_system = true;
                Tag::OperatingSystem
            }
            (Tag::OperatingSystem, "Description") => Tag::Text(Field::OsDescription),
            (Tag::VirtualSystem { first }, "VirtualHardwareSection") => {
                let counts = first && !self.seen_hardware;
                self.seen_hardware |= first;
                Tag::Hardware { first: counts }
            }
            (Tag::Hardware { first }, "Item" | "StorageItem" | "EthernetPortItem") => {
                Tag::Item { first }
            }
            (Tag::Item { first: true }, "ResourceType") => Tag::Text(Field::ResourceType),
            (Tag::Item { first: true }, "VirtualQuantity") => Tag::Text(Field::VirtualQuantity),
            (Tag::Item { first: true }, "AllocationUnits") => Tag::Text(Field::AllocationUnits),
            (Tag::VirtualSystem { .. } | Tag::VirtualSystemCollection, "ProductSection")
                if !self.seen_product =>
            {
                self.seen_product = true;
                Tag::Product
            }
            (Tag::Product, "Product") => Tag::Text(Field::Product),
            (Tag::Product, "Vendor") => Tag::Text(Field::Vendor),
            (Tag::Product, "Version") => Tag::Text(Field::Version),
            _ => Tag::Other,
        };
        Ok(tag)
    }

    /// The current element ends.
    fn close(&mut self) -> Result<(), String> {
        let tag = self
            .stack
            .pop()
            .ok_or_else(|| unreadable("an end tag without its start"))?;
        match tag {
            Tag::Text(field) => {
                let value = std::mem::take(&mut self.text).finish();
                self.set(field, value);
            }
            Tag::Item { first: true } => self.finish_item(),
            Tag::OperatingSystem => {
                self.metadata.os_type = self
                    .os_type_attribute
                    .take()
                    .or_else(|| self.os_description.take())
                    .or_else(|| self.os_id.take());
            }
            _ => {}
        }
        if self.stack.is_empty() {
            self.root_closed = true;
        }
        Ok(())
    }

    /// Character data: kept when the open element's text is wanted, refused
    /// outside the root, where XML allows only whitespace.
    fn characters(&mut self, chunk: &str) -> Result<(), String> {
        match self.stack.last() {
            None if !chunk.trim().is_empty() => Err(unreadable("text outside the root element")),
            Some(Tag::Text(_)) => {
                self.text.push(chunk);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `&name;` or `&#n;` in text: with no DOCTYPE, only the predefined
    /// entities exist, so any other name makes the document ill-formed.
    fn reference(&mut self, reference: &BytesRef<'_>) -> Result<(), String> {
        let mut encoded = [0u8; 4];
        let resolved = match reference.resolve_char_ref().map_err(unreadable)? {
            Some(c) => &*c.encode_utf8(&mut encoded),
            None => quick_xml::escape::resolve_predefined_entity(reference).ok_or_else(|| {
                unreadable(format!(
                    "the entity &{}; is not defined",
                    printable(reference)
                ))
            })?,
        };
        self.characters(resolved)
    }

    /// A `File` element: its hrefs are checked wherever it is; one of
    /// `References` (`listed`) is also recorded.
    fn file(&mut self, element: &BytesStart<'_>, listed: bool) -> Result<(), String> {
        let (mut href, mut id, mut size) = (None, None, None);
        each_attribute(element, |name, value| {
            match name {
                // Every href is checked, not just the first: a reader may
                // take any of `ovf:href` and `other:href`.
                "href" => {
                    check_href(&value)?;
                    keep_first(&mut href, value);
                }
                "id" => keep_first(&mut id, value),
                "size" => keep_first(&mut size, value),
                _ => {}
            }
            Ok(())
        })?;
        if !listed {
            return Ok(());
        }
        // A listed file without an href is as unusable as an empty one.
        let href = href.ok_or_else(|| not_plain(""))?;
        if self.metadata.files.len() >= MAX_ENTRIES {
            return Err(too_many("files"));
        }
        self.metadata.files.push(OvfFile {
            href,
            size: number(size.as_deref()),
        });
        self.file_ids.push(id.as_deref().and_then(clean));
        Ok(())
    }

    /// A `Disk` of the `DiskSection`.
    fn disk(&mut self, element: &BytesStart<'_>) -> Result<(), String> {
        let (mut capacity, mut units, mut file_ref) = (None, None, None);
        each_attribute(element, |name, value| {
            match name {
                "capacity" => keep_first(&mut capacity, value),
                "capacityAllocationUnits" => keep_first(&mut units, value),
                "fileRef" => keep_first(&mut file_ref, value),
                _ => {}
            }
            Ok(())
        })?;
        if self.metadata.disks.len() >= MAX_ENTRIES {
            return Err(too_many("disks"));
        }
        // DSP0243: without `capacityAllocationUnits` the capacity is in bytes.
        let unit = match units {
            None => Some(1),
            Some(units) => clean(&units).as_deref().and_then(unit_bytes),
        };
        let capacity_bytes = number::<u64>(capacity.as_deref())
            .zip(unit)
            .and_then(|(capacity, unit)| capacity.checked_mul(unit));
        self.metadata.disks.push(OvfDisk {
            capacity_bytes,
            file: None,
        });
        self.disk_refs.push(file_ref.as_deref().and_then(clean));
        Ok(())
    }

    /// A `Network` of the `NetworkSection`.
    fn network(&mut self, element: &BytesStart<'_>) -> Result<(), String> {
        self.networks_seen += 1;
        if self.networks_seen > MAX_ENTRIES {
            return Err(too_many("networks"));
        }
        let mut network = None;
        each_attribute(element, |name, value| {
            if name == "name" {
                keep_first(&mut network, value);
            }
            Ok(())
        })?;
        if let Some(network) = network.as_deref().and_then(clean) {
            self.metadata.networks.push(network);
        }
        Ok(())
    }

    /// The attributes of the `OperatingSystemSection`: VMware's
    /// `vmw:osType` names the guest precisely, the CIM `ovf:id` only a
    /// family, so the id is the last resort.
    fn operating_system(&mut self, element: &BytesStart<'_>) -> Result<(), String> {
        let (mut os_type, mut id) = (None, None);
        each_attribute(element, |name, value| {
            match name {
                "osType" => keep_first(&mut os_type, value),
                "id" => keep_first(&mut id, value),
                _ => {}
            }
            Ok(())
        })?;
        self.os_type_attribute = os_type.as_deref().and_then(clean);
        self.os_id = id.as_deref().and_then(clean);
        Ok(())
    }

    /// Stores the text of an element that ended; the first value wins.
    fn set(&mut self, field: Field, value: Option<String>) {
        let slot = match field {
            Field::OsDescription => &mut self.os_description,
            Field::Product => &mut self.metadata.product,
            Field::Vendor => &mut self.metadata.vendor,
            Field::Version => &mut self.metadata.version,
            Field::ResourceType => &mut self.item.resource_type,
            Field::VirtualQuantity => &mut self.item.quantity,
            Field::AllocationUnits => &mut self.item.units,
        };
        if slot.is_none() {
            *slot = value;
        }
    }

    /// Adds a finished processor or memory item to its total.
    fn finish_item(&mut self) {
        let item = std::mem::take(&mut self.item);
        match item
            .resource_type
            .as_deref()
            .and_then(|kind| kind.parse::<u16>().ok())
        {
            Some(3) => self.cpus = self.cpus.add(number(item.quantity.as_deref())),
            Some(4) => {
                let mib = memory_mib(item.quantity.as_deref(), item.units.as_deref());
                self.memory = self.memory.add(mib);
            }
            _ => {}
        }
    }

    /// The end of the document: everything must be closed, and disks learn
    /// the hrefs of the files they name.
    fn finish(self) -> Result<OvfMetadata, String> {
        if !self.stack.is_empty() {
            return Err(unreadable("the document ends inside an element"));
        }
        if !self.root_closed {
            return Err("not an OVF descriptor: it has no root element".into());
        }
        let Parser {
            mut metadata,
            file_ids,
            disk_refs,
            cpus,
            memory,
            ..
        } = self;
        let mut hrefs: HashMap<&str, &str> = HashMap::new();
        for (id, file) in file_ids.iter().zip(&metadata.files) {
            if let Some(id) = id {
                // Of two files with one id, a reader finds the first.
                hrefs.entry(id.as_str()).or_insert(file.href.as_str());
            }
        }
        for (disk, file_ref) in metadata.disks.iter_mut().zip(&disk_refs) {
            disk.file = file_ref
                .as_deref()
                .and_then(|file_ref| hrefs.get(file_ref))
                .map(|href| (*href).to_owned());
        }
        metadata.cpus = cpus.value().and_then(|cpus| u32::try_from(cpus).ok());
        metadata.memory_mib = memory.value();
        Ok(metadata)
    }
}

/// Fills an empty slot: of two attributes with one local name (in different
/// namespaces), the first is kept.
fn keep_first(slot: &mut Option<String>, value: String) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Calls `visit` with the local name and the normalized value (entities
/// resolved) of each attribute of `element`, namespace declarations left
/// out: `xmlns:href="..."` declares a prefix, it is no href.
fn each_attribute(
    element: &BytesStart<'_>,
    mut visit: impl FnMut(&str, String) -> Result<(), String>,
) -> Result<(), String> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(unreadable)?;
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(unreadable)?;
        visit(attribute.key.local_name().into_inner(), value.into_owned())?;
    }
    Ok(())
}

/// Refuses an href that could make a hypervisor read anything but a file
/// beside the descriptor. It is checked as written and percent-decoded,
/// since readers that treat it as a URI decode `%2e%2e` to `..`.
fn check_href(href: &str) -> Result<(), String> {
    match percent_encoding::percent_decode_str(href).decode_utf8() {
        Ok(decoded) if is_plain_name(href) && is_plain_name(&decoded) => Ok(()),
        _ => Err(not_plain(href)),
    }
}

/// A relative name made of plain segments: not empty, not absolute, no `..`
/// anywhere (as the store sync checks it), no backslash (a Windows path
/// separator), no colon (a scheme such as `http:` or `file:`, a drive letter,
/// and so any `://`), no empty or `.` segment, no control or bidirectional
/// formatting character.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TEXT
        && !name.starts_with('/')
        && !name.contains("..")
        && !name
            .chars()
            .any(|c| matches!(c, '\\' | ':') || c.is_control() || is_bidi_control(c))
        && name
            .split('/')
            .all(|segment| !segment.is_empty() && segment != ".")
}

/// A value as stored: trimmed, cut to [`MAX_TEXT`] bytes at a character
/// boundary, and dropped when empty or when it holds a control or
/// bidirectional formatting character (such text would display otherwise
/// than it reads, so no text is better than altered text).
fn clean(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let value = trimmed[..floor_boundary(trimmed, MAX_TEXT)].trim_end();
    let plain = !value.chars().any(|c| c.is_control() || is_bidi_control(c));
    (plain && !value.is_empty()).then(|| value.to_owned())
}

/// A cleaned value read as a whole number; None when absent or not one.
fn number<T: std::str::FromStr>(raw: Option<&str>) -> Option<T> {
    clean(raw?)?.parse().ok()
}

/// Memory in MiB, rounded down: the product is taken in `u128`, where two
/// `u64` always fit, so only a result beyond `u64` is unknown.
fn memory_mib(quantity: Option<&str>, units: Option<&str>) -> Option<u64> {
    let quantity = u128::from(number::<u64>(quantity)?);
    // A memory item without units is unknown: guessing MiB could make the
    // stored, filterable size wrong by a factor of a million.
    let unit = u128::from(unit_bytes(units?)?);
    u64::try_from(quantity * unit / MIB).ok()
}

/// The bytes in one of the allocation units DSP0243 and exporters write:
/// programmatic units (`byte`, `byte * 2^20`, `byte * 1024`, factors of
/// `N` or `N^E` joined by `*`) or the older names (`MegaBytes`, `GB`, …),
/// whose prefixes OVF tools read as powers of 1024. None when unknown or
/// too large for a `u64`.
fn unit_bytes(units: &str) -> Option<u64> {
    let units = units.trim();
    let named = match units.to_ascii_lowercase().as_str() {
        "byte" | "bytes" | "b" => Some(1),
        "kilobyte" | "kilobytes" | "kb" | "kib" => Some(1 << 10),
        "megabyte" | "megabytes" | "mb" | "mib" => Some(1 << 20),
        "gigabyte" | "gigabytes" | "gb" | "gib" => Some(1 << 30),
        "terabyte" | "terabytes" | "tb" | "tib" => Some(1 << 40),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    let mut factors = units.split('*');
    let base = factors.next()?.trim();
    if !base.eq_ignore_ascii_case("byte") && !base.eq_ignore_ascii_case("bytes") {
        return None;
    }
    factors.try_fold(1u64, |total, factor| {
        let factor = match factor.split_once('^') {
            Some((base, exponent)) => base
                .trim()
                .parse::<u64>()
                .ok()?
                .checked_pow(exponent.trim().parse::<u32>().ok()?)?,
            None => factor.trim().parse::<u64>().ok()?,
        };
        total.checked_mul(factor)
    })
}

/// The largest index at most `at` that starts a character of `text`.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Text from the descriptor made safe to show in a message: control and
/// bidirectional formatting characters replaced, and at most 128 characters.
fn printable(text: &str) -> String {
    const SHOWN: usize = 128;
    let mut shown: String = text
        .chars()
        .take(SHOWN)
        .map(|c| {
            if c.is_control() || is_bidi_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if text.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    shown
}

/// The reason for a descriptor that is not well-formed XML.
fn unreadable(error: impl std::fmt::Display) -> String {
    format!("unreadable descriptor: {}", printable(&error.to_string()))
}

fn not_plain(href: &str) -> String {
    format!(
        "a file reference is not a plain name: \"{}\"",
        printable(href)
    )
}

fn too_many(what: &str) -> String {
    format!("the descriptor lists more than {MAX_ENTRIES} {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor as VMware ovftool 4.x exports a one-disk Ubuntu VM.
    const VMWARE_OVF_1_0: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<!--Generated by VMware ovftool 4.4.3 (build-18663434), UTC time: 2023-05-02T10:11:12.123456Z-->
<Envelope vmw:buildId="build-18663434" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="ubuntu-22.04-disk1.vmdk" ovf:id="file1" ovf:size="1073741824"/>
    <File ovf:href="ubuntu-22.04-file1.nvram" ovf:id="file2" ovf:size="8684"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="2147483648"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="ubuntu-22.04">
    <Info>A virtual machine</Info>
    <Name>ubuntu-22.04</Name>
    <OperatingSystemSection ovf:id="94" vmw:osType="ubuntu64Guest">
      <Info>The kind of installed guest operating system</Info>
      <Description>Ubuntu Linux (64-bit)</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>ubuntu-22.04</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-19</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
        <vmw:CoresPerSocket ovf:required="false">1</vmw:CoresPerSocket>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>4096MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>4096</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
        <vmw:Config ovf:required="false" vmw:key="backing.writeThrough" vmw:value="false"/>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on &quot;VM Network&quot;</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
    <ProductSection>
      <Info>Information about the installed software</Info>
      <Product>Ubuntu Server</Product>
      <Vendor>Canonical Ltd.</Vendor>
      <Version>22.04.3 LTS</Version>
      <FullVersion>22.04.3 LTS (Jammy Jellyfish)</FullVersion>
      <Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="ubuntu">
        <Label>Hostname</Label>
        <Description>The guest's hostname</Description>
      </Property>
    </ProductSection>
    <AnnotationSection ovf:required="false">
      <Info>A human-readable annotation</Info>
      <Annotation>Built by the image pipeline</Annotation>
    </AnnotationSection>
  </VirtualSystem>
</Envelope>
"##;

    /// A descriptor as VirtualBox 7 exports with "Open Virtualization Format 2.0".
    const VIRTUALBOX_OVF_2_0: &str = r##"<?xml version="1.0"?>
<Envelope ovf:version="2.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/2" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine" xmlns:epasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData" xmlns:sasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData">
  <References>
    <File ovf:id="file1" ovf:href="debian-12-disk001.vmdk"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="21474836480" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="0f4c3d8e-6a59-4a1e-9c62-3f3c2b3f9a10"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="debian-12">
    <Info>A virtual machine</Info>
    <ProductSection>
      <Info>Meta-information about the installed software</Info>
      <Product>Debian</Product>
      <Vendor>The Debian Project</Vendor>
      <Version>12.5</Version>
      <ProductUrl>https://www.debian.org/</ProductUrl>
    </ProductSection>
    <OperatingSystemSection ovf:id="96">
      <Info>The kind of installed guest operating system</Info>
      <Description>Debian_64</Description>
      <vbox:OSType ovf:required="false">Debian_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>debian-12</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:Caption>4 virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>4</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>2048 MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>2048</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Caption>sataController0</rasd:Caption>
        <rasd:Description>SATA Controller</rasd:Description>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <EthernetPortItem>
        <epasd:AutomaticAllocation>true</epasd:AutomaticAllocation>
        <epasd:Caption>Ethernet adapter on 'NAT'</epasd:Caption>
        <epasd:Connection>NAT</epasd:Connection>
        <epasd:InstanceID>4</epasd:InstanceID>
        <epasd:ResourceSubType>E1000</epasd:ResourceSubType>
        <epasd:ResourceType>10</epasd:ResourceType>
      </EthernetPortItem>
      <StorageItem>
        <sasd:AddressOnParent>0</sasd:AddressOnParent>
        <sasd:Caption>disk1</sasd:Caption>
        <sasd:Description>Disk Image</sasd:Description>
        <sasd:HostResource>/disk/vmdisk1</sasd:HostResource>
        <sasd:InstanceID>5</sasd:InstanceID>
        <sasd:Parent>3</sasd:Parent>
        <sasd:ResourceType>17</sasd:ResourceType>
      </StorageItem>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"##;

    fn parsed(xml: &str) -> OvfMetadata {
        parse(xml.as_bytes()).unwrap_or_else(|error| panic!("{error}\n{xml}"))
    }

    fn refused(xml: &str) -> String {
        match parse(xml.as_bytes()) {
            Ok(metadata) => panic!("accepted: {metadata:?}\n{xml}"),
            Err(reason) => reason,
        }
    }

    /// A VMware-style envelope around `body`.
    fn envelope(body: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" \
             xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" \
             xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\" \
             xmlns:vmw=\"http://www.vmware.com/schema/ovf\">{body}</Envelope>"
        )
    }

    fn with_file(href: &str) -> String {
        envelope(&format!(
            "<References><File ovf:href=\"{href}\" ovf:id=\"file1\"/></References>"
        ))
    }

    /// A virtual system whose hardware section holds `items`.
    fn with_items(items: &str) -> String {
        envelope(&format!(
            "<VirtualSystem ovf:id=\"vm\"><VirtualHardwareSection>{items}</VirtualHardwareSection></VirtualSystem>"
        ))
    }

    fn item(resource_type: u32, quantity: &str, units: Option<&str>) -> String {
        let units = units
            .map(|units| format!("<rasd:AllocationUnits>{units}</rasd:AllocationUnits>"))
            .unwrap_or_default();
        format!(
            "<Item>{units}<rasd:ResourceType>{resource_type}</rasd:ResourceType>\
             <rasd:VirtualQuantity>{quantity}</rasd:VirtualQuantity></Item>"
        )
    }

    fn with_disk(capacity: &str, units: &str) -> String {
        envelope(&format!(
            "<DiskSection><Disk ovf:capacity=\"{capacity}\" ovf:capacityAllocationUnits=\"{units}\" ovf:diskId=\"vmdisk1\"/></DiskSection>"
        ))
    }

    #[test]
    fn a_vmware_ovf_1_0_descriptor_is_read_whole() {
        assert_eq!(
            parsed(VMWARE_OVF_1_0),
            OvfMetadata {
                os_type: Some("ubuntu64Guest".into()),
                cpus: Some(2),
                memory_mib: Some(4096),
                disks: vec![OvfDisk {
                    capacity_bytes: Some(16 << 30),
                    file: Some("ubuntu-22.04-disk1.vmdk".into()),
                }],
                networks: vec!["VM Network".into()],
                product: Some("Ubuntu Server".into()),
                vendor: Some("Canonical Ltd.".into()),
                version: Some("22.04.3 LTS".into()),
                files: vec![
                    OvfFile {
                        href: "ubuntu-22.04-disk1.vmdk".into(),
                        size: Some(1073741824),
                    },
                    OvfFile {
                        href: "ubuntu-22.04-file1.nvram".into(),
                        size: Some(8684),
                    },
                ],
            }
        );
    }

    #[test]
    fn a_virtualbox_ovf_2_0_descriptor_is_read_whole() {
        assert_eq!(
            parsed(VIRTUALBOX_OVF_2_0),
            OvfMetadata {
                // No osType attribute: the description names the guest.
                os_type: Some("Debian_64".into()),
                cpus: Some(4),
                memory_mib: Some(2048),
                disks: vec![OvfDisk {
                    capacity_bytes: Some(21474836480),
                    file: Some("debian-12-disk001.vmdk".into()),
                }],
                networks: vec!["NAT".into()],
                product: Some("Debian".into()),
                vendor: Some("The Debian Project".into()),
                version: Some("12.5".into()),
                files: vec![OvfFile {
                    href: "debian-12-disk001.vmdk".into(),
                    size: None,
                }],
            }
        );
    }

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
        let xml =
            envelope("<VirtualSystem><ProductSection><Vendor/></ProductSection></VirtualSystem>");
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
}
