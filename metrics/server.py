"""``serve_metrics``: the ``GET /metrics`` endpoint, on a daemon thread of its own.

    server = serve_metrics(collector, port=9464)          # 127.0.0.1 unless told otherwise
    ...                                                   # Prometheus scrapes server.url
    server.close()

The server renders the collector on each request in its own thread, so a scrape never waits for
the event loop and the loop never waits for a scrape. ``port=0`` takes any free port
(``server.port`` tells which). One process, one port: with several worker processes on a host,
give each its own port (see ``docs/metrics.md``).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from .collector import MetricsCollector
from .errors import MetricsServerError

__all__ = ["DEFAULT_PORT", "MetricsServer", "serve_metrics"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464
_PATH = "/metrics"


class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it (also as a context manager)."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = str(httpd.server_address[0])
        self.port = int(httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{_PATH}"

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_metrics(
    collector: MetricsCollector, port: int = DEFAULT_PORT, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``collector`` on ``http://host:port/metrics`` until ``close()``; raises
    ``MetricsServerError`` when the port is taken or the host is not an address of this machine."""
    handler = type("MetricsHandler", (_Handler,), {"collector": collector})
    server_class = _IPv6Server if ":" in host else _Server
    try:
        httpd = server_class((host, port), handler)
    except OSError as exc:
        raise MetricsServerError(host, port, exc.strerror or str(exc)) from exc
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics", daemon=True
    )
    thread.start()
    server = MetricsServer(httpd, thread)
    log.info("serving metrics on %s", server.url)
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse DNS lookup of the host (slow where DNS is)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Answers ``GET /metrics`` with the collector's exposition; 404 anywhere else."""

    collector: MetricsCollector

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != _PATH:
            self._reply(404, b"not found: metrics are at /metrics\n", "text/plain; charset=utf-8")
            return
        try:
            body = self.collector.render()
        except Exception:
            log.exception("rendering metrics failed")
            self._reply(500, b"rendering metrics failed\n", "text/plain; charset=utf-8")
            return
        self._reply(200, body, self.collector.content_type)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics request: " + format, *args)
