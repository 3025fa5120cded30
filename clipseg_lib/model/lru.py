"""A bounded mapping that forgets what was least recently used: the segmenter's prompt caches
and the encoding cache's memory tier."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class LruCache(Generic[Key, Value]):
    """At most `capacity` units of values (one unit an entry, or what `weigh` says a value
    weighs, e.g. its bytes); storing past that drops the least recently stored or read entries.
    A value heavier than `capacity` is not stored."""

    def __init__(self, capacity: int, weigh: Callable[[Value], int] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"LruCache capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._weigh = weigh or (lambda _: 1)
        self._entries: OrderedDict[Key, tuple[Value, int]] = OrderedDict()
        self.size = 0
        """Units held now (<= capacity)."""

    def get(self, key: Key) -> Value | None:
        """The value stored under `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Key, value: Value) -> None:
        """Store `value` under `key`, dropping the least recently used entries to make room."""
        weight = self._weigh(value)
        self.pop(key)
        if weight > self.capacity:
            return
        while self.size + weight > self.capacity:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.size -= dropped
        self._entries[key] = (value, weight)
        self.size += weight

    def pop(self, key: Key) -> Value | None:
        """Forget `key`; return its value, or None."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.size -= entry[1]
        return entry[0]

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self.size = 0

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
