"""Serving a :class:`~campaignvcs.web.app.CatalogApp` on the loopback interface with werkzeug.

The server binds ``127.0.0.1`` only (never a wildcard address), answers each request in
its own thread (the application reads the repository one request at a time) and logs
nothing: the command prints its URL and stays quiet until Ctrl-C.
"""

from __future__ import annotations

import socketserver

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from campaignvcs.errors import CampError
from campaignvcs.web.app import CatalogApp

LOOPBACK = "127.0.0.1"


class QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler without the access log on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: a catalog server is quiet."""

    def log(self, type: str, message: str, *args: object) -> None:
        """Nothing (errors reach the client as 500 pages)."""


def bind(app: CatalogApp, port: int) -> BaseWSGIServer:
    """A server for ``app`` on 127.0.0.1:``port`` (0: any free port), bound and ready to serve."""
    try:
        server = make_server(LOOPBACK, port, app, threaded=True, request_handler=QuietHandler)
    except OSError as exc:
        raise CampError(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror or exc}") from None
    app.allow_port(server.server_port)
    return server


def serve_until_interrupted(server: BaseWSGIServer) -> None:
    """Serve until a signal raises out of the loop (werkzeug's own ``serve_forever`` would swallow it)."""
    try:
        socketserver.BaseServer.serve_forever(server)
    finally:
        server.server_close()


def url_of(server: BaseWSGIServer) -> str:
    """``http://127.0.0.1:PORT/``."""
    return f"http://{LOOPBACK}:{server.server_port}/"
