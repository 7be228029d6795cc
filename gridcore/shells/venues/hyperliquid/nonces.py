"""The per-signer nonce allocator: strictly increasing, durable across restarts (failures
`nonce-race`, `nonce-reuse-after-restart`).

The venue keeps each signer's highest nonces and refuses a nonce it has seen
(``Invalid nonce: duplicate nonce <n>``) or one below the smallest it keeps
(``Invalid nonce: nonce too low <n> < <least>``); a nonce must also be within a day of the
venue's time. A nonce is therefore a millisecond timestamp, fast-forwarded past the last one
issued: ``max(now_ms, last + 1)``.

Two failures this guards against:

* **the clock steps back** (NTP correction, VM migration): ``now_ms`` falls below the last
  nonce; the allocator keeps counting up from ``last + 1`` instead of reusing a value;
* **a restart reuses a nonce**: a bot killed right after signing restarts within the same
  millisecond range (or with a clock that is behind); its first nonce must still exceed every
  nonce it ever issued. The high-water mark is written to disk (atomically, fsynced) *before*
  a nonce is handed out, so no crash can lose it.

One allocator per signer address (the agent wallet when an API wallet signs): the venue counts
nonces per signer, not per account. Two processes must not share a signer: an allocator with a
file holds an exclusive lock on it for its lifetime (a second process is refused at start), and
:meth:`NonceAllocator.shared` gives every user in one process the same allocator.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

__all__ = ["NonceAllocator", "nonce_path"]


def nonce_path(directory: Path, signer: str) -> Path:
    """Where ``signer``'s high-water mark lives: beside the journal, one file per signer."""
    return directory / f"hyperliquid-nonce-{signer.lower()}.json"


class NonceAllocator:
    """Issues strictly increasing nonces for one signer; see the module docstring.

    ``path`` holds the high-water mark (``None``: in memory only, for tests and the fake demo);
    ``now_ms`` is the wall clock in ms. Thread-safe.
    """

    _shared: ClassVar[dict[Path, NonceAllocator]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *, signer: str, now_ms: Callable[[], int], path: Path | None) -> None:
        self.signer = signer
        self._now_ms = now_ms
        self._path = path
        self._lock = threading.Lock()
        self._guard: int | None = None
        if path is not None:
            guard = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(guard)
                raise ValueError(
                    f"nonce file {path} is in use by another allocator (another process signing "
                    f"as {signer}?): one signer per process, or nonces collide"
                ) from exc
            self._guard = guard
        try:
            self._last = self._load()
        except ValueError:
            self.close()
            raise

    @classmethod
    def shared(cls, *, signer: str, now_ms: Callable[[], int], path: Path) -> NonceAllocator:
        """The process's one allocator for ``path`` (created on first use)."""
        key = path.resolve()
        with cls._shared_lock:
            found = cls._shared.get(key)
            if found is None:
                found = cls._shared[key] = cls(signer=signer, now_ms=now_ms, path=path)
            elif found.signer.lower() != signer.lower():
                raise ValueError(f"nonce file {path} belongs to signer {found.signer}")
            return found

    def close(self) -> None:
        """Release the file's lock (the high-water mark stays on disk)."""
        if self._guard is not None:
            os.close(self._guard)
            self._guard = None

    @property
    def last(self) -> int:
        """The highest nonce issued so far (0 before the first)."""
        return self._last

    def _load(self) -> int:
        if self._path is None or not self._path.exists():
            return 0
        try:
            data = json.loads(self._path.read_text())
            last = int(data["last"])
            signer = str(data["signer"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"nonce file {self._path} is unreadable ({exc}); it guards against reusing a "
                f"signed nonce: restore it, or delete it only if no nonce of {self.signer} was "
                f"issued within the last day"
            ) from exc
        if signer.lower() != self.signer.lower():
            raise ValueError(
                f"nonce file {self._path} belongs to signer {signer}, not {self.signer}"
            )
        return last

    def _store(self, last: int) -> None:
        if self._path is None:
            return
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            json.dump({"signer": self.signer, "last": last}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._path)
        directory = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def next(self) -> int:
        """The next nonce: ``max(now_ms, last + 1)``, durable before it is returned."""
        with self._lock:
            nonce = max(self._now_ms(), self._last + 1)
            self._store(nonce)
            self._last = nonce
            return nonce
