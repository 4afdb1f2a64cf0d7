"""Drives Depot with pyvss, the official VSS client, unchanged.

Run by server/tests/api/pyvss.rs against a server with the demo catalog:
DEPOT_URL (no trailing slash), DEPOT_USER and DEPOT_PASSWORD say where and who;
DEPOT_STORE_URL, if set, is another server of the same deployment, where the
files go over WebDAV (the sync is still asked of DEPOT_URL).
Exits non-zero, with the reason, on the first thing that is not as VSS does it.
"""

import io
import os
import tarfile
import sys
import time

import requests
from pyvss.exceptions import VssError
from pyvss.manager import VssManager

URL = os.environ["DEPOT_URL"]
USER = os.environ["DEPOT_USER"]
PASSWORD = os.environ["DEPOT_PASSWORD"]
STORE_URL = os.environ.get("DEPOT_STORE_URL", URL)

UBUNTU_BY_PATH = [
    "ubuntu-xenial-server-cloudimg-amd64.ova",
    "ubuntu-xenial-server-cloudimg-i386.ova",
    "ubuntu-zesty-server-cloudimg-amd64.ova",
    "ubuntu-zesty-server-cloudimg-i386.ova",
]


def small_ova():
    """A valid OVA: a descriptor naming one raw disk, then the disk."""
    descriptor = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" '
        b'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">'
        b'<References><File ovf:href="disk.img" ovf:id="file1"/></References></Envelope>\n'
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in (("appliance.ovf", descriptor), ("disk.img", os.urandom(8192))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def webdav(method, path, body=None):
    """A request to the personal store over WebDAV."""
    response = requests.request(
        method, f"{STORE_URL}/store/{path}", data=body, auth=(USER, PASSWORD), timeout=30
    )
    check(response.status_code in (200, 201, 204), f"{method} {path}: {response.status_code}")


def wait_processed(manager, request_id):
    deadline = time.time() + 30
    while time.time() < deadline:
        request = manager.get_image_sync_request(request_id)
        if request["status"] == "PROCESSED":
            return request
        check(request["status"] not in ("ERROR", "ERROR_RETRY"), f"sync failed: {request}")
        time.sleep(0.2)
    check(False, f"sync request {request_id} never finished")


def main():
    manager = VssManager(api_endpoint=URL)
    token = manager.get_token(USER, PASSWORD)
    check(token and token.count(".") == 2, f"get_token gave {token!r}")

    # Public and personal images, filtered and sorted, every page followed.
    ubuntu = manager.get_images(filter="name,like,ubu%", sort="path,asc", show_all=True)
    check([image["name"] for image in ubuntu] == UBUNTU_BY_PATH, f"ubuntu images: {ubuntu}")
    every = manager.get_images(show_all=True, per_page=3)
    check(len(every) == 14, f"show_all over pages of 3 found {len(every)} images")
    check(len({image["id"] for image in every}) == 14, "a page repeated an image")
    centos = manager.get_isos(filter="name,like,CentO%", sort="name,desc", show_all=True)
    names = [iso["name"] for iso in centos]
    check(len(names) == 7 and names == sorted(names, reverse=True), f"CentOS ISOs: {names}")
    isos = manager.get_isos(show_all=True, per_page=10)
    check(len(isos) == 44, f"show_all found {len(isos)} ISOs")

    # The personal store, synced.
    check(manager.get_user_vm_images() == [], "a new user has VM images")
    webdav("MKCOL", "images/")
    webdav("PUT", "images/appliance.ova", small_ova())
    submitted = manager.sync_user_vm_images()
    request = submitted["request"]
    check(request["status"] == "SUBMITTED", f"sync answer: {submitted}")
    done = wait_processed(manager, request["id"])
    check(done["added"] == 1 and done["type"] == "VM", f"VM sync: {done}")
    mine = manager.get_user_vm_images()
    check([image["name"] for image in mine] == ["appliance.ova"], f"user VM images: {mine}")

    media = bytearray(os.urandom(40000))
    media[0x8001:0x8006] = b"CD001"
    webdav("PUT", "media.iso", bytes(media))
    submitted = manager.sync_user_isos()
    done = wait_processed(manager, submitted["request"]["id"])
    check(done["added"] == 1 and done["type"] == "ISO", f"ISO sync: {done}")
    check(
        [iso["name"] for iso in manager.get_user_isos()] == ["media.iso"],
        "user ISOs after the sync",
    )
    processed = manager.get_image_sync_requests(filter="status,eq,PROCESSED", show_all=True)
    check(len(processed) == 2, f"processed requests: {processed}")

    # A bad filter surfaces as pyvss's VssError with Depot's message.
    try:
        manager.get_images(filter="nonsense,eq,1")
        check(False, "a bad filter was accepted")
    except VssError as error:
        check("unknown field 'nonsense'" in str(error), f"VssError says {error}")

    print("pyvss: every call answered as VSS does")


if __name__ == "__main__":
    main()
