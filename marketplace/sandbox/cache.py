"""A small bounded map for the sandbox's pure, repeated work (parsing, validating, marking).

API clients send the same few queries again and again; parsing and validating one, or
marking a released number, is pure (same input, same immutable result), so doing it
twice is wasted work. Only successes are kept: a refused query is refused afresh each
time.

Eviction is first in, first out, which keeps a hit to one dictionary lookup with no lock
(a single ``dict.get`` is atomic in CPython); only adding an entry takes the lock. For
caches this small and this hot that loses nothing against least-recently-used.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most ``max_items`` entries; the oldest is dropped first."""

    def __init__(self, max_items: int) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self._items: dict[K, V] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.max_items:
                del self._items[next(iter(self._items))]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
