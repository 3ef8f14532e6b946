"""The guest-side state cache of the Python SDK (as in the Rust SDK) and the current
record's bookkeeping.

Value and map state are read through to the host once per key and written back once per
key at the end of each call into the guest (a batch, a timer, a window firing), so a
record that reads and updates its key's state makes no host call in the common case. The
host snapshots only between calls, so every checkpoint finds the state complete. Entries
stay valid across calls (only this instance writes its keyed state while it lives).
State with a TTL is not cached, nor state used where no key is current (open,
watermarks, broadcast input, close).
"""

from typing import Any, Callable, List, Optional, Tuple

from wit_world.imports import context as _context

_pending_record: List[Optional[int]] = [None]


def _sync_current_record() -> None:
    """Tell the host which record is current, once, and only when state, timers or the key are used."""
    i = _pending_record[0]
    if i is not None:
        _pending_record[0] = None
        _context.set_current_record(i)


#: Entries kept per state before the clean ones are forgotten.
MAX_CACHED_ENTRIES = 1 << 16

# The current scope: [mode, record index, key]; mode 0 no key, 1 a record of the batch
# (its key from the batch), 2 one key for the whole call (asked of the host once).
_scope: list = [0, None, None]
_caches: list = []


def _enter_record(index: int, key: Optional[bytes]) -> None:
    _scope[0], _scope[1], _scope[2] = (0, None, None) if key is None else (1, index, key)


def _enter_call() -> None:
    _scope[0], _scope[1], _scope[2] = 2, None, None


def _current() -> Optional[Tuple[bytes, Optional[int]]]:
    """The current key and the record index that makes it current again, if the cache applies."""
    mode = _scope[0]
    if mode == 0:
        return None
    if mode == 2 and _scope[2] is None:
        key = _context.current_key()
        if key is None:
            _scope[0] = 0
            return None
        _scope[2] = bytes(key)
    return _scope[2], _scope[1]


def _write_back() -> None:
    for cache in _caches:
        cache.write_back()
    _scope[0], _scope[1], _scope[2] = 0, None, None


def _forget_all() -> None:
    """A failed call: what it wrote is not kept (the job restarts from a checkpoint)."""
    for cache in _caches:
        cache.entries.clear()
        cache.dirty.clear()
    _scope[0], _scope[1], _scope[2] = 0, None, None


class _Cache:
    """Encoded values by cache key (``None``: absent), the ones written since the last write-back."""

    def __init__(self, load: Callable[[Any], Optional[bytes]], store: Callable[[Any, Optional[bytes]], None]):
        self.entries: dict = {}
        self.dirty: dict = {}
        self._load = load
        self._store = store
        _caches.append(self)

    def get(self, ck: Any, sub: Any) -> Optional[bytes]:
        try:
            return self.entries[ck]
        except KeyError:
            _sync_current_record()
            raw = self._load(sub)
            raw = None if raw is None else bytes(raw)
            self.entries[ck] = raw
            return raw

    def put(self, ck: Any, sub: Any, raw: Optional[bytes], index: Optional[int]) -> None:
        self.entries[ck] = raw
        self.dirty[ck] = (sub, index)

    def write_back(self) -> None:
        if self.dirty:
            entries = self.entries
            for ck, (sub, index) in self.dirty.items():
                if index is not None:
                    _context.set_current_record(index)
                self._store(sub, entries[ck])
            self.dirty = {}
        if len(self.entries) > MAX_CACHED_ENTRIES:
            self.entries.clear()
