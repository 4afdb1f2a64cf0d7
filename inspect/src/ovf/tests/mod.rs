//! Descriptors as exporters write them, what is read from them, and every
//! refusal: one module each, over the helpers below.

use super::*;

mod exporters;
mod reading;
mod refusals;

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
