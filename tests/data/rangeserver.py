"""A local HTTP server with byte ranges (what uproot and fsspec need; ``python -m
http.server`` answers every request with the whole file), for the remote-reading tests and
benchmarks/remote_io.py. It counts the requests and bytes it sends."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["Served", "serve"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class Served:
    """The server's base URL and what it sent."""

    url: str
    requests: int = 0
    bytes_sent: int = 0


class _Handler(SimpleHTTPRequestHandler):
    served: Served

    def __init__(self, *args: Any, served: Served, **kwargs: Any) -> None:
        self.served = served
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "not found")
            return
        size = path.stat().st_size
        start, stop, status = 0, size, 200
        match = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if match and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first:
                start, stop = int(first), min(size, int(last) + 1) if last else size
            else:  # the last N bytes
                start, stop = max(0, size - int(last)), size
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(stop - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.end_headers()
        self.served.requests += 1
        if not body:
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = stop - start
            while left:
                block = f.read(min(left, 1 << 20))
                self.wfile.write(block)
                left -= len(block)
                self.served.bytes_sent += len(block)


@contextmanager
def serve(root: Path) -> Iterator[Served]:
    """Serve the files under ``root`` on 127.0.0.1 (a free port) while in the block."""
    served = Served("")
    handler = partial(_Handler, served=served, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
