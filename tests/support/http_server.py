"""A real HTTP server on 127.0.0.1 for the download tests (nothing stands in for the network code under test)."""

from __future__ import annotations

import contextlib
import http.server
import threading


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean (no access log on stderr)."""

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler], **state):
    """Serve `handler` on a free port (``server_port``) in a daemon thread; yields the server, which carries `state`
    as attributes (handlers read them as ``self.server.<name>``; tests change them mid-test)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in state.items():
        setattr(srv, name, value)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
