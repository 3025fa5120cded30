"""Never encode twice: an `ImageEncoding` cache shared by the notebooks of a study run.

Attached to a `Segmenter` (``segmenter.encoding_cache = EncodingCache(...)``), it answers
`Segmenter.encode_image` for an input already encoded. The key (`encoding_key`) is a digest of
what the backbone is fed (the image's pixels after the processor: their bytes, dtype and input
size), the image's own size, the weights (`weights_sha256`, or a digest of the vision
backbone's tensors for a model built in memory), dtype, device type and the layers kept. Two
tiers:

- memory: the most recently used encodings, at most `memory_bytes`;
- disk (optional ``directory``): one safetensors file per key, so notebooks running in other
  processes, at the same time or later, read what one of them encoded. Files are written beside
  their place and renamed over it (atomic: a reader sees a whole file or none), never unpickled,
  and the least recently used are deleted past `disk_bytes`. While one process encodes a key it
  holds a claim file (created exclusively), and the others wait for its file instead of
  encoding the same input at the same time; a claim whose process died or that is older than
  `CLAIM_TIMEOUT_S` is taken over.

Tensors are stored exactly, so an encoding read back equals the one computed bit for bit.
Each lookup is counted (`stats`) and, with a ``ledger`` folder, written one line a lookup to a
file of this cache's own there; `ledger_totals` sums a run's ledgers: encodings against distinct
inputs across all its notebooks.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from clipseg_lib.model.encoding import ImageEncoding
from clipseg_lib.model.lru import LruCache

if TYPE_CHECKING:
    from clipseg_lib.model.segmenter import Segmenter

DEFAULT_MEMORY_BYTES = 512 * 2**20
"""Memory tier: about 30 full-size encodings (ViT-B/16 at 352 px, 11 hidden states: 16 MiB)."""
DEFAULT_DISK_BYTES = 8 * 2**30
"""Disk tier: about 500 full-size encodings."""
CLAIM_TIMEOUT_S = 600.0
"""A claim older than this is taken over (its process is on another host, or hangs)."""
CLAIM_POLL_S = 0.02
SUFFIX = ".safetensors"
_weights_digests: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class CacheStats:
    """Lookups so far: answered from memory, from disk, or encoded (`misses`)."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0

    @property
    def hits(self) -> int:
        """Lookups answered without running the backbone."""
        return self.memory_hits + self.disk_hits

    def as_dict(self) -> dict[str, int]:
        """Plain numbers for a results file."""
        return {"lookups": self.hits + self.misses, "hits": self.hits,
                "memory_hits": self.memory_hits, "disk_hits": self.disk_hits,
                "misses": self.misses}


def _weights_identity(segmenter: Segmenter) -> str:
    """`weights_sha256`, or a digest of the vision backbone's tensors (computed once a model)."""
    if segmenter.weights_sha256:
        return segmenter.weights_sha256
    vision = segmenter.model.clip.vision_model
    if vision not in _weights_digests:
        digest = hashlib.blake2b(digest_size=20)
        for name, tensor in [*vision.named_parameters(), *vision.named_buffers()]:
            digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
            digest.update(tensor.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
        _weights_digests[vision] = "params:" + digest.hexdigest()
    return _weights_digests[vision]


def encoding_key(
    segmenter: Segmenter, input_digest: bytes, original_size: tuple[int, int], max_layer: int
) -> str:
    """Hex digest naming the encoding through hidden state `max_layer` by `segmenter` (its
    weights, precision, device type) of the backbone input whose `work.input_digest` (shape, dtype,
    values: the image after the processor's resizing and normalisation) is `input_digest`, for
    an image of `original_size` (H, W)."""
    fields = {
        "weights": _weights_identity(segmenter),
        "dtype": segmenter.precision,
        "device": segmenter.device.type,
        "input": input_digest.hex(),
        "original_size": list(original_size),
        "max_layer": max_layer,
    }
    return hashlib.blake2b(json.dumps(fields, sort_keys=True).encode(), digest_size=20).hexdigest()


def _nbytes(encoding: ImageEncoding) -> int:
    return sum(state.numel() * state.element_size() for state in encoding.hidden_states)


class EncodingCache:
    """Image encodings by `encoding_key`: in memory, and in ``directory`` when given (see the
    module doc). `stats` counts the lookups; ``ledger`` (a folder) records each one."""

    def __init__(
        self,
        *,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        directory: str | os.PathLike | None = None,
        disk_bytes: int = DEFAULT_DISK_BYTES,
        ledger: str | os.PathLike | None = None,
    ) -> None:
        if disk_bytes < 1:
            raise ValueError(f"disk_bytes must be at least 1, got {disk_bytes}")
        self.memory: LruCache[str, ImageEncoding] = LruCache(memory_bytes, _nbytes)
        self.directory = None if directory is None else Path(directory)
        self.disk_bytes = disk_bytes
        self.stats = CacheStats()
        self._token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._written_since_scan: int | None = None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._ledger_path = None if ledger is None else Path(ledger) / f"{self._token}.txt"
        self._ledger: TextIO | None = None

    def __repr__(self) -> str:
        return (f"EncodingCache(memory {self.memory.size} of {self.memory.capacity} bytes, "
                f"directory={self.directory}, {self.stats})")

    def encoding(
        self,
        segmenter: Segmenter,
        input_digest: bytes,
        original_size: tuple[int, int],
        max_layer: int,
        encode: Callable[[], ImageEncoding],
    ) -> ImageEncoding:
        """The encoding named by `encoding_key` (same arguments): from memory, from disk, or
        `encode()` (then stored in both)."""
        key = encoding_key(segmenter, input_digest, original_size, max_layer)
        found = self.memory.get(key)
        if found is not None:
            return self._counted(key, found, memory_hits=1)
        while self.directory is not None:
            found = self._load(key, segmenter.device)
            if found is not None:
                self.memory.put(key, found)
                return self._counted(key, found, disk_hits=1)
            if self._claim(key):
                try:
                    encoded = encode()
                    self._store(key, encoded)
                finally:
                    self._path(key, ".claim").unlink(missing_ok=True)
                break
            self._wait_for(key)
        else:
            encoded = encode()
        self.memory.put(key, encoded)
        return self._counted(key, encoded, misses=1)

    def _counted(self, key: str, encoding: ImageEncoding, **counts: int) -> ImageEncoding:
        self.stats = replace(self.stats, **{name: getattr(self.stats, name) + value
                                            for name, value in counts.items()})
        if self._ledger_path is not None:
            if self._ledger is None:
                self._ledger_path.parent.mkdir(parents=True, exist_ok=True)
                self._ledger = self._ledger_path.open("a", encoding="utf-8", buffering=1)
            self._ledger.write(f"{'miss' if 'misses' in counts else 'hit'} {key}\n")
        return encoding

    def _path(self, key: str, suffix: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}{suffix}"

    def _load(self, key: str, device: torch.device) -> ImageEncoding | None:
        """The encoding stored under `key`, or None (absent, or unreadable: then deleted)."""

        path = self._path(key, SUFFIX)
        try:
            with safe_open(path, framework="pt", device=str(device)) as stored:
                metadata = stored.metadata() or {}
                if metadata.get("key") != key:
                    raise ValueError(f"{path} holds {metadata.get('key')!r}")
                states = tuple(stored.get_tensor(f"hidden_{index}")
                               for index in range(int(metadata["states"])))
            os.utime(path)  # recently used: evicted last
        except FileNotFoundError:
            return None
        except (OSError, SafetensorError, ValueError, KeyError):
            path.unlink(missing_ok=True)
            return None
        return ImageEncoding(
            hidden_states=states,
            original_size=_size(metadata["original_size"]),
            input_size=_size(metadata["input_size"]),
        )

    def _store(self, key: str, encoding: ImageEncoding) -> None:
        """Write `encoding` to a file of its own, then rename it into place."""
        path = self._path(key, SUFFIX)
        temporary = self._path(f".{key}.{self._token}", ".tmp")
        tensors = {f"hidden_{index}": state.detach().cpu().contiguous()
                   for index, state in enumerate(encoding.hidden_states)}
        metadata = {"key": key, "states": str(len(tensors)),
                    "original_size": ",".join(map(str, encoding.original_size)),
                    "input_size": ",".join(map(str, encoding.input_size))}
        try:
            save_file(tensors, temporary, metadata=metadata)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        self._evict_past_bound(path.stat().st_size)

    def _evict_past_bound(self, written: int) -> None:
        """Delete the least recently used files while the folder holds over `disk_bytes`.
        The folder is listed at the first write and again once this cache has written an
        eighth of the bound since: concurrent writers overshoot by at most that much each."""
        if self._written_since_scan is not None:
            self._written_since_scan += written
            if self._written_since_scan < self.disk_bytes // 8:
                return
        assert self.directory is not None
        files = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                status = path.stat()
            except FileNotFoundError:
                continue
            files.append((status.st_mtime_ns, status.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda item: item[0]):
            if total <= self.disk_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
        self._written_since_scan = 0

    def _claim(self, key: str) -> bool:
        """Whether this process now holds `key`'s claim (and so encodes it)."""
        try:
            descriptor = os.open(self._path(key, ".claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(f"{socket.gethostname()} {os.getpid()}")
        return True

    def _wait_for(self, key: str) -> None:
        """Wait while another live process holds `key`'s claim; remove a stale claim."""
        claim = self._path(key, ".claim")
        while True:
            try:
                holder = claim.read_text(encoding="utf-8").split()
                age = time.time() - claim.stat().st_mtime
            except FileNotFoundError:
                return
            if age > CLAIM_TIMEOUT_S or (len(holder) == 2 and not _alive(*holder)):
                claim.unlink(missing_ok=True)
                return
            time.sleep(CLAIM_POLL_S)


def _alive(host: str, pid: str) -> bool:
    """Whether process `pid` runs (True when it is on another host: unknown)."""
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size(text: str) -> tuple[int, int]:
    height, width = (int(part) for part in text.split(","))
    return height, width


@dataclass(frozen=True)
class LedgerTotals:
    """A run's encoding-cache lookups across all its notebooks: `encodings` ran the backbone,
    `hits` did not; `distinct_inputs` is the number of distinct keys looked up."""

    lookups: int
    hits: int
    encodings: int
    distinct_inputs: int

    def as_dict(self) -> dict[str, int]:
        """Plain numbers for run.json."""
        return {"lookups": self.lookups, "hits": self.hits, "encodings": self.encodings,
                "distinct_inputs": self.distinct_inputs}


def ledger_totals(ledger: str | os.PathLike) -> LedgerTotals | None:
    """Totals of the ledger files in folder `ledger`, or None when it holds none."""
    files = sorted(Path(ledger).glob("*.txt")) if Path(ledger).is_dir() else []
    if not files:
        return None
    outcomes = [line.split() for path in files
                for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    outcomes = [fields for fields in outcomes if len(fields) == 2]
    encodings = sum(outcome == "miss" for outcome, _ in outcomes)
    return LedgerTotals(len(outcomes), len(outcomes) - encodings, encodings,
                        len({key for _, key in outcomes}))
