"""A file server on 127.0.0.1 (random port) with selectable behaviour, for download tests.

URL paths are ``/<mode>/<name>``:

- ``range``   honours ``Range: bytes=N-`` (206, or 416 past the end);
- ``norange`` ignores Range and always sends the whole file with 200;
- ``drop``    like ``range``, but while ``drops[name] > 0`` it sends the headers
  for the full body, half of the body, then closes the connection;
- ``slow``    like ``range``, in 4 KiB pieces with a pause (so a test can kill a client midway);
- ``html``    answers 200 with a small text/html page.

Every request is recorded as ``(path, range header or None)``.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        mode, _, name = self.path.lstrip("/").partition("/")
        data = srv.files.get(name)
        if data is None:
            self.send_error(404)
            return
        if mode == "html":
            body = b"<html><body>Please confirm the download</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        start = 0
        if rng and mode != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if mode == "drop" and srv.drops.get(name, 0) > 0:
            srv.drops[name] -= 1
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "slow":
            for i in range(0, len(body), 4096):
                self.wfile.write(body[i:i + 4096])
                self.wfile.flush()
                time.sleep(srv.slow_pause)
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes]
    drops: dict[str, int]
    requests: list[tuple[str, str | None]]
    slow_pause: float


class LocalServer:
    """``with LocalServer({"a.bin": b"..."}) as srv: srv.url("range", "a.bin")``."""

    def __init__(self, files: dict[str, bytes] | None = None, slow_pause: float = 0.01):
        self._srv = _Server(("127.0.0.1", 0), _Handler)
        self._srv.files = dict(files or {})
        self._srv.drops = {}
        self._srv.requests = []
        self._srv.slow_pause = slow_pause
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def files(self) -> dict[str, bytes]:
        return self._srv.files

    @property
    def drops(self) -> dict[str, int]:
        return self._srv.drops

    @property
    def requests(self) -> list[tuple[str, str | None]]:
        return self._srv.requests

    def url(self, mode: str, name: str) -> str:
        return f"http://127.0.0.1:{self._srv.server_address[1]}/{mode}/{name}"

    def __enter__(self) -> "LocalServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._srv.shutdown()
        self._srv.server_close()
