"""A server on 127.0.0.1 that streams a large body without holding it, and counts what it sent.

It answers every GET with `total` bytes written in 64 KiB chunks (close-delimited, or with a
`Content-Length` when `declare_length`), so a client that stops reading early shows up as
`sent < total`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK = b"x" * 65536


class StreamingServer:
    def __init__(self, total: int, declare_length: bool = False) -> None:
        self.total = total
        self.sent = 0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if declare_length:
                    self.send_header("Content-Length", str(server.total))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    while server.sent < server.total:
                        piece = CHUNK[: server.total - server.sent]
                        self.wfile.write(piece)
                        server.sent += len(piece)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StreamingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
