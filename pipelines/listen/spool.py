"""The local spool: every accepted delivery is appended to a segment file and fsynced before the 2xx.

Appends made while a write is in flight are grouped into the next write (one fsync for the group), so a
burst costs a few fsyncs, not one per event. The flusher seals the open segment (`*.open` renamed to
`*.jsonl`), loads the sealed segments and removes them once the warehouse has them. A segment left open by
a killed process is sealed at start, so it is loaded like any other; a torn last line (a write the killed
process never acknowledged) is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

OPEN, SEALED = ".open", ".jsonl"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lines_in(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


class Spool:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for left_open in self.dir.glob(f"*{OPEN}"):
            left_open.rename(left_open.with_suffix(SEALED))
        _fsync_dir(self.dir)
        sealed = self.sealed()
        self._seq = 1 + max((int(p.stem) for p in sealed), default=0)
        self._sealed_events = sum(_lines_in(p) for p in sealed)
        self._open_events = 0
        self._file: Any = None
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._writing = False

    @property
    def depth(self) -> int:
        """Events spooled and not yet in the warehouse."""
        return self._open_events + self._sealed_events

    @property
    def open_events(self) -> int:
        return self._open_events

    async def append(self, record: dict[str, Any]) -> None:
        """Return once `record` is on disk (written and fsynced)."""
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line, done))
        if not self._writing:
            self._writing = True
            try:
                while self._pending:
                    batch, self._pending = self._pending, []
                    try:
                        await asyncio.to_thread(self._write, [item[0] for item in batch])
                    except Exception as exc:  # a full or failing disk: no delivery of the group is acked
                        for _, future in batch:
                            future.set_exception(exc)
                    else:
                        for _, future in batch:
                            future.set_result(None)
            finally:
                self._writing = False
        await done

    def _write(self, lines: list[bytes]) -> None:
        with self._lock:
            if self._file is None:
                self._file = (self.dir / f"{self._seq:010d}{OPEN}").open("ab")
                _fsync_dir(self.dir)  # the new file's directory entry must survive a crash too
            self._file.write(b"".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._open_events += len(lines)

    def seal(self) -> list[Path]:
        """Close the open segment (new appends start another) and return every sealed segment, oldest first."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                path = self.dir / f"{self._seq:010d}{OPEN}"
                path.rename(path.with_suffix(SEALED))
                _fsync_dir(self.dir)
                self._file = None
                self._seq += 1
                self._sealed_events += self._open_events
                self._open_events = 0
        return self.sealed()

    def sealed(self) -> list[Path]:
        return sorted(self.dir.glob(f"*{SEALED}"))

    @staticmethod
    def read(paths: list[Path]) -> list[dict[str, Any]]:
        records = []
        for path in paths:
            with path.open("rb") as f:
                for line in f:
                    try:
                        records.append(json.loads(line))
                    except ValueError:  # the torn tail of a write that was never acknowledged
                        continue
        return records

    def remove(self, paths: list[Path]) -> None:
        """Forget segments the warehouse now holds."""
        with self._lock:
            for path in paths:
                count = _lines_in(path)
                path.unlink()
                self._sealed_events -= count
            _fsync_dir(self.dir)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
