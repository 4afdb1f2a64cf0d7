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

mod values;

use values::*;

/// The largest descriptor read (bigger is refused by the caller).
pub const MAX_DESCRIPTOR: usize = 4 << 20;

/// The most distinct networks kept of a descriptor's.
const MAX_NETWORKS_KEPT: usize = 64;

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
        // look for files wherever they are.
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
                // One href (whatever its prefix), checked wherever it is.
                "href" => {
                    check_href(&value)?;
                    keep_only(&mut href, value, "File", "href")?;
                }
                "id" => keep_only(&mut id, value, "File", "id")?,
                "size" => keep_first(&mut size, value),
                // The disk a reader gets from a compressed or chunked file
                // is not the bytes Depot inspects: it would go unchecked.
                "compression" if value.trim() != "identity" => {
                    return Err(format!(
                        "a file is stored compressed (\"{}\"), which Depot cannot inspect: \
                         export the appliance without compression",
                        printable(&value)
                    ));
                }
                "chunkSize" => {
                    return Err(
                        "a file is stored in chunks (chunkSize), which Depot cannot \
                                inspect: export the appliance as whole files"
                            .into(),
                    );
                }
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
                "fileRef" => keep_only(&mut file_ref, value, "Disk", "fileRef")?,
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
        // Each once, and a few: they are stored with the image and shown
        // with it (a VM has at most ten network cards in vSphere).
        if let Some(network) = network.as_deref().and_then(clean) {
            if self.metadata.networks.len() < MAX_NETWORKS_KEPT
                && !self.metadata.networks.contains(&network)
            {
                self.metadata.networks.push(network);
            }
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

#[cfg(test)]
mod tests;
