"""Run the app in a background thread of this process (tests, benchmarks, notebooks): a real uvicorn
server on a real socket, stopped cleanly on exit."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class BackgroundServer:
    """``with BackgroundServer(app) as server: server.url`` — uvicorn on `host` (loopback by default)."""

    app: Any
    host: str = "127.0.0.1"
    port: int = 0
    _server: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "BackgroundServer":
        import uvicorn

        self.port = self.port or free_port(self.host)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="mmagent-serve")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=30)
