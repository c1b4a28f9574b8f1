"""Serve a sandbox app on loopback: in a background thread (tests, demo, benchmarks) or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass
class RunningServer:
    url: str
    app: Any
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def state(self) -> Any:
        return self.app.state.sandbox

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_in_thread(app: Any, port: int = 0, host: str = "127.0.0.1") -> RunningServer:
    """Start uvicorn on loopback in a daemon thread; return once it accepts connections."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the sandbox serves on loopback only")
    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sandbox-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"sandbox server on {host}:{port} did not start")
        time.sleep(0.02)
    return RunningServer(f"http://{host}:{port}", app, server, thread)
