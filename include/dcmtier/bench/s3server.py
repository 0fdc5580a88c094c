"""An S3 API server on loopback for the tests and ``dcmtier bench scale --s3``: moto's, in a
process of its own.

Clients talk to it over HTTP like to any S3 endpoint (``AWS_ENDPOINT_URL``). It can stop
listening, a real outage (connections are refused), and listen again on the same port with its
objects kept, which a killed moto server would lose:

- ``SIGUSR1``: stop listening; ``SIGUSR2``: listen again;
- ``--fail-on-part N``: the first time a client uploads part N of a multipart upload, drop
  that connection and stop listening (an outage in the middle of a large upload).

Run: ``python -m dcmtier.bench.s3server [--fail-on-part N]``; it prints ``listening <port>``
once ready.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server


class Server:
    """moto's S3 application behind a listener that can be closed and opened again."""

    def __init__(self, port: int, fail_on_part: int | None) -> None:
        self.port = port
        self.fail_on_part = fail_on_part
        self.app = DomainDispatcherApplication(create_backend_app)
        self.server: BaseWSGIServer | None = None
        self.lock = threading.Lock()

    def listen(self) -> None:
        with self.lock:
            if self.server is not None:
                return
            self.server = make_server(
                "127.0.0.1", self.port, self.wsgi, threaded=True,
                request_handler=MotoRequestHandler,
            )  # fmt: skip
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
        print(f"listening {self.port}", flush=True)

    def stop(self) -> None:
        with self.lock:
            server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()  # refuse new connections, not just leave them queued
        print("stopped", flush=True)

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        part = query.get("partNumber", [""])[0]
        if "uploadId" in query and part.isdigit() and int(part) == self.fail_on_part:
            self.fail_on_part = None
            threading.Thread(target=self.stop).start()
            connection = environ.get("werkzeug.socket")
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("the S3 server went down during an upload")
        return self.app(environ, start_response)  # type: ignore[no-any-return]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-on-part", type=int)
    args = parser.parse_args(argv)
    server = Server(args.port or _free_port(), args.fail_on_part)
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=server.stop).start())
    signal.signal(signal.SIGUSR2, lambda *_: threading.Thread(target=server.listen).start())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.listen()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
