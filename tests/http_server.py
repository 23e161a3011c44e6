"""A local HTTP file server on 127.0.0.1 with switchable misbehaviour, for download tests."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    ignore_range: bool = False
    drop_after: int | None = None  # close the connection after this many body bytes (once)
    truncate_to: int | None = None  # announce the full length, send only this many bytes (once)
    fail_first: int = 0  # answer 500 to the first N requests
    status: int | None = None  # always answer this status (e.g. 404)
    reset_after: int | None = None  # send this many body bytes, pause, then reset the connection (once)
    etag: bool = True  # send a strong ETag and honour If-Range


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)

    def start(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                path = self.path.split("?", 1)[0]
                server.requests.append((path, self.headers.get("Range")))
                b = server.behaviours.setdefault(path, Behaviour())
                if b.status is not None:
                    self.send_error(b.status)
                    return
                if b.fail_first > 0:
                    b.fail_first -= 1
                    self.send_error(500)
                    return
                if path not in server.files:
                    self.send_error(404)
                    return
                data = server.files[path]
                start = 0
                rng = self.headers.get("Range")
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                if_range = self.headers.get("If-Range")
                if rng and b.etag and if_range is not None and if_range != etag:
                    rng = None  # the client's partial copy is of another version: send it all
                if rng and not b.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                if b.etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                if b.reset_after is not None:
                    n, b.reset_after = b.reset_after, None
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    time.sleep(0.3)  # let the client read what was sent, then reset (RST, not FIN)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if b.drop_after is not None:
                    n, b.drop_after = b.drop_after, None
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                if b.truncate_to is not None:
                    n, b.truncate_to = b.truncate_to, None
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)
