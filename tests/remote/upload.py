#!/usr/bin/env python3
"""Uploads a fixture image to a local test server, the way a cloud user would store it.

  upload.py s3 ENDPOINT BUCKET KEY FILE
      boto3 (moto's own client library) against ENDPOINT; credentials from AWS_* variables.
  upload.py azure-page ENDPOINT ACCOUNT CONTAINER BLOB FILE
      Azure Blob REST (Shared Key, key from AZURE_STORAGE_ACCOUNT_KEY) against ENDPOINT (the
      account URL, e.g. Azurite's http://127.0.0.1:PORT/devstoreaccount1): creates the
      container and a page blob of FILE's size (a multiple of 512, as a fixed VHD is), then
      writes only the 4 MiB pieces that hold data (holes found with SEEK_DATA, zero pieces
      skipped), as Azure itself stores a sparse VM disk.
"""
import base64
import email.utils
import hashlib
import hmac
import os
import sys
import urllib.parse
import urllib.request

PIECE = 4 << 20


def s3(endpoint, bucket, key, path):
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    client.upload_file(path, bucket, key)


def azure_request(endpoint, account, key, method, resource, query, headers, body=b""):
    headers = dict(headers)
    # urllib adds a Content-Type to any PUT with a body; name it here so it is signed.
    headers.setdefault("Content-Type", "application/octet-stream")
    headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
    headers["x-ms-version"] = "2021-08-06"
    length = str(len(body)) if body else ""
    canon_headers = "".join(
        f"{k}:{v}\n" for k, v in sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-ms-"))
    )
    url_path = urllib.parse.urlparse(endpoint).path.rstrip("/") + resource
    canon_resource = f"/{account}{url_path}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
    to_sign = "\n".join(
        [method, "", "", length, "", headers.get("Content-Type", ""), "", "", "", "", "", ""]
    ) + "\n" + canon_headers + canon_resource
    sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
    headers["Authorization"] = f"SharedKey {account}:{sig}"
    url = endpoint.rstrip("/") + resource + ("?" + urllib.parse.urlencode(query) if query else "")
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method, headers=headers)
    if method == "PUT" and not body:
        req.add_header("Content-Length", "0")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status


def data_pieces(path, size):
    """Offsets of 4 MiB pieces that hold data (skipping holes and all-zero pieces)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                return
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            start = data - data % PIECE
            while start < hole:
                n = min(PIECE, size - start)
                buf = os.pread(fd, n, start)
                if buf.count(0) != len(buf):
                    yield start, buf
                start += PIECE
            pos = max(hole, start)
    finally:
        os.close(fd)


def azure_page(endpoint, account, container, blob, path):
    key = os.environ["AZURE_STORAGE_ACCOUNT_KEY"]
    size = os.path.getsize(path)
    if size % 512:
        sys.exit(f"{path}: {size} bytes is not a multiple of 512, not a page blob")
    try:
        azure_request(endpoint, account, key, "PUT", f"/{container}", {"restype": "container"}, {})
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
    azure_request(endpoint, account, key, "PUT", f"/{container}/{blob}", {},
                  {"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": str(size)})
    for offset, buf in data_pieces(path, size):
        azure_request(endpoint, account, key, "PUT", f"/{container}/{blob}", {"comp": "page"},
                      {"x-ms-page-write": "update", "x-ms-range": f"bytes={offset}-{offset + len(buf) - 1}",
                       "Content-Type": "application/octet-stream"}, buf)


if __name__ == "__main__":
    if sys.argv[1] == "s3":
        s3(*sys.argv[2:6])
    elif sys.argv[1] == "azure-page":
        azure_page(*sys.argv[2:7])
    else:
        sys.exit("usage: upload.py s3|azure-page ...")
