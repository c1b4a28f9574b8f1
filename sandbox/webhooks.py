"""Webhook deliveries of both simulators: a background outbox that POSTs events to registered URLs.

Chatwoot tries each delivery once (account webhooks never retry); Sendblue retries
a non-2xx or unreachable endpoint (docs: "multiple webhook calls"; count and backoff are unconfirmed, so
3 retries at 0.2, 0.4 and 0.8 s here). `log` keeps (url, event, status or error) of every attempt.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

RETRY_PAUSES = {"chatwoot": (), "sendblue": (0.2, 0.4, 0.8)}


class Outbox:
    def __init__(self, api: str):
        self.api = api
        self.log: list[tuple[str, str, Any]] = []
        self._queue: queue.Queue[tuple[str, str, bytes, Callable[[bytes], dict[str, str]]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"{api}-webhooks", daemon=True)
        self._thread.start()

    def send(self, url: str, event: str, payload: Any, headers: Callable[[bytes], dict[str, str]]) -> None:
        self._queue.put((url, event, json.dumps(payload).encode(), headers))

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued delivery (and its retries) is done."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                url, event, body, headers = self._queue.get()
                try:
                    for pause in (0.0, *RETRY_PAUSES[self.api]):
                        time.sleep(pause)
                        try:
                            status: Any = client.post(url, content=body, headers=headers(body)).status_code
                        except httpx.HTTPError as exc:
                            status = type(exc).__name__
                        self.log.append((url, event, status))
                        if isinstance(status, int) and 200 <= status < 300:
                            break
                finally:
                    self._queue.task_done()
