"""A JSON-RPC proxy on loopback that fails every third request (HTTP 503).

Tests point agents at it to show they survive an RPC that drops requests.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import urllib.request
from collections.abc import Iterator


class _Handler(http.server.BaseHTTPRequestHandler):
    upstream = ""
    every = 3
    count = 0
    failed = 0
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        with cls.lock:
            cls.count += 1
            fail = cls.count % cls.every == 0
            cls.failed += fail
        if fail:
            self.send_response(503)
            self.end_headers()
            return
        req = urllib.request.Request(
            cls.upstream, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = resp.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def flaky_rpc(upstream: str, every: int = 3) -> Iterator[type]:
    """Serve the proxy; yields its handler class (`.url`, `.count`, `.failed`)."""
    handler = type("FlakyRPC", (_Handler,), {"upstream": upstream, "every": every})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
