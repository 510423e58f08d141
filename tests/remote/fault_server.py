#!/usr/bin/env python3
"""An HTTP server that misbehaves on purpose, for winre's remote-read tests.

Usage: fault_server.py DIR PORTFILE   (binds 127.0.0.1 on a free port, writes the port to PORTFILE)

GET /MODE/NAME serves DIR/NAME with range support, except as MODE says:
  ok         plain range requests (206, Content-Range, ETag)
  flaky      the first request for each range answers 500, the next ones are served
  always500  every request answers 500
  drop-once  the first request for each range sends half the body and closes the connection
  drop       every request does that
  stall      reads the request, then sends nothing (until the client gives up)
  forbidden  403;  missing  404
  norange    ignores Range: 200 with a 1 GiB body of zeros, counting what it manages to send
GET /_stats answers JSON: per mode, requests seen and body bytes sent.
Every request loop is bounded; a stalled handler waits at most 120 s. Loopback only.
"""
import http.server
import json
import os
import re
import sys
import threading
import time

ROOT = sys.argv[1]
LOCK = threading.Lock()
STATS = {}
SEEN = set()


def count(mode, requests=0, sent=0):
    with LOCK:
        s = STATS.setdefault(mode, {"requests": 0, "bytes_sent": 0})
        s["requests"] += requests
        s["bytes_sent"] += sent


def first_time(key):
    with LOCK:
        if key in SEEN:
            return False
        SEEN.add(key)
        return True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def plain(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_stats":
            with LOCK:
                body = json.dumps(STATS).encode()
            return self.plain(200, body)
        parts = self.path.split("?")[0].lstrip("/").split("/", 1)
        if len(parts) != 2:
            return self.plain(404)
        mode, name = parts
        count(mode, requests=1)
        rng = self.headers.get("Range", "")
        if mode == "forbidden":
            return self.plain(403, b"<Error><Code>AuthenticationFailed</Code></Error>")
        if mode == "missing":
            return self.plain(404, b"<Error><Code>BlobNotFound</Code></Error>")
        if mode == "always500" or (mode == "flaky" and first_time((mode, rng))):
            return self.plain(500, b"try again")
        if mode == "stall":
            time.sleep(120)
            self.close_connection = True
            return
        if mode == "norange":
            total = 1 << 30
            self.send_response(200)
            self.send_header("Content-Length", str(total))
            self.end_headers()
            chunk = bytes(1 << 16)
            try:
                for _ in range(total // len(chunk)):
                    self.wfile.write(chunk)
                    count(mode, sent=len(chunk))
            except OSError:
                pass
            self.close_connection = True
            return
        path = os.path.join(ROOT, os.path.basename(name))
        try:
            size = os.path.getsize(path)
        except OSError:
            return self.plain(404)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if start >= size or end < start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        else:
            start, end, status = 0, size - 1, 200
        length = end - start + 1
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(length)
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", '"%x-%x"' % (size, int(os.path.getmtime(path))))
        self.send_header("Last-Modified", self.date_time_string(int(os.path.getmtime(path))))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if mode == "drop" or (mode == "drop-once" and first_time((mode, rng))):
            half = body[: len(body) // 2]
            self.wfile.write(half)
            count(mode, sent=len(half))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)
        count(mode, sent=len(body))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
tmp = sys.argv[2] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, sys.argv[2])
server.serve_forever()
