"""Drives Depot's resumable uploads with tuspy (PyPI), the tus project's
Python client, unchanged.

Run by server/tests/api/uploads.rs: DEPOT_URL and DEPOT_OTHER_URL are two
servers of one deployment (or one server and itself restarted), DEPOT_USER
and DEPOT_PASSWORD who uploads. The upload begins on the first, is left
midway, and is resumed through the second; the image's SHA-256 must be the
file's. Exits non-zero, with the reason, on the first thing that is wrong.
"""

import base64
import hashlib
import io
import os
import sys

import requests
from tusclient import client

URL = os.environ["DEPOT_URL"]
OTHER_URL = os.environ["DEPOT_OTHER_URL"]
USER = os.environ["DEPOT_USER"]
PASSWORD = os.environ["DEPOT_PASSWORD"]
CHUNK = 1 << 20


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def tus_client(base):
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return client.TusClient(f"{base}/api/uploads", headers={"Authorization": f"Basic {token}"})


def main():
    media = bytearray(os.urandom(5 * CHUNK + 12345))
    media[0x8001:0x8006] = b"CD001"
    media = bytes(media)

    first = tus_client(URL).uploader(
        file_stream=io.BytesIO(media),
        chunk_size=CHUNK,
        metadata={"filename": "tuspy.iso", "label": "from tuspy"},
        upload_checksum=True,
    )
    for _ in range(2):
        first.upload_chunk()
    check(first.offset == 2 * CHUNK, f"offset after two chunks: {first.offset}")
    upload_url = first.url
    check(upload_url.startswith(URL) or upload_url.startswith("/"), f"upload URL {upload_url}")
    path = upload_url[len(URL):] if upload_url.startswith(URL) else upload_url

    # The client goes away; a new one resumes through the other server.
    second = tus_client(OTHER_URL).uploader(
        file_stream=io.BytesIO(media),
        chunk_size=CHUNK,
        url=f"{OTHER_URL}{path}",
        upload_checksum=True,
    )
    check(second.offset == 2 * CHUNK, f"resumed at {second.offset}")
    second.upload()
    check(second.offset == len(media), f"ended at {second.offset}")

    answer = requests.get(
        f"{OTHER_URL}{path}",
        auth=(USER, PASSWORD),
        headers={"Tus-Resumable": "1.0.0"},
        timeout=30,
    )
    check(answer.status_code == 200, f"GET the upload: {answer.status_code} {answer.text}")
    image = answer.json()["image"]
    check(image["sha256"] == hashlib.sha256(media).hexdigest(), f"image: {image}")
    check(image["name"] == "tuspy.iso" and image["label"] == "from tuspy", f"image: {image}")
    print("tuspy: uploaded, resumed elsewhere, and the image is the file")


if __name__ == "__main__":
    main()
