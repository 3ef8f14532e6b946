"""Rivulet operators in Python.

Write a class deriving from :class:`Operator`, then export it at the bottom of your
``app.py`` with ``Operator = export(MyOperator)``; build the component with
``scripts/build-operator.sh DIR`` (componentize-py against ``wit/operator.wit``, ``rivulet:operator@0.4.0``).

The SDK mirrors the Rust one: records arrive one by one (the host sends batches), keyed
state (:class:`ValueState`, :class:`ListState`, :class:`MapState`) is scoped to the
current record's key and encoded with an explicit codec (:data:`JSON` by default, or
:data:`BYTES`; never pickle), timers in event and processing time, side outputs, logs.
An exception in your code fails the job with its message and Python traceback, naming
the operator and plugin. Operators with several inputs override :meth:`Operator.process_input`,
:meth:`Operator.join` (interval join), :meth:`Operator.co_group` (window join) or
:meth:`Operator.process_broadcast` with :class:`BroadcastMapState`; ``rivulet_sdk.cep``
finds patterns in each key's events.
"""

import json as _json
import struct as _struct
import traceback as _traceback
from typing import Any, Callable, Iterator, List, Optional, Tuple

from componentize_py_types import Err
from wit_world.imports import broadcast_state as _broadcast
from wit_world.imports import collector as _collector
from wit_world.imports import context as _context
from wit_world.imports import keyed_state as _state
from wit_world.imports import timers as _timers
from wit_world.imports import types as _types

from ._state_cache import (  # noqa: F401 (MAX_CACHED_ENTRIES is public)
    MAX_CACHED_ENTRIES,
    _Cache,
    _current,
    _enter_call,
    _enter_record,
    _forget_all,
    _pending_record,
    _scope,
    _sync_current_record,
    _write_back,
)

__all__ = [
    "Operator", "Record", "Context", "Window", "Input", "CoGroup", "ValueState", "ListState", "MapState",
    "BroadcastMapState", "StateEntry", "Codec", "JSON", "BYTES", "EVENT_TIME", "PROCESSING_TIME", "export",
]

EVENT_TIME = "event-time"
PROCESSING_TIME = "processing-time"

_NO_KEY = 0xFFFFFFFF
_U32 = _struct.Struct("<I")
_I64 = _struct.Struct("<q")


class Codec:
    """How state values (and map keys) become bytes: ``encode(obj) -> bytes``, ``decode(bytes) -> obj``."""

    def __init__(self, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]):
        self.encode = encode
        self.decode = decode


#: JSON, compatible with the Rust SDK's serde encoding of the same values.
JSON = Codec(lambda v: _json.dumps(v, separators=(",", ":")).encode(), lambda b: _json.loads(b))
#: Raw bytes, unchanged.
BYTES = Codec(lambda v: bytes(v), lambda b: bytes(b))


class Record:
    """One record: an optional key, a value and an event timestamp (ms)."""

    __slots__ = ("key", "value", "timestamp")

    def __init__(self, key: Optional[bytes], value: bytes, timestamp: int):
        self.key = key
        self.value = value
        self.timestamp = timestamp

    def json(self) -> Any:
        """The value parsed as JSON."""
        return _json.loads(self.value)

    def value_str(self) -> str:
        """The value as UTF-8 text."""
        return self.value.decode()

    def key_str(self) -> Optional[str]:
        """The key as UTF-8 text, if there is one."""
        return None if self.key is None else self.key.decode()

    def __repr__(self) -> str:
        return f"Record(key={self.key!r}, value={self.value!r}, timestamp={self.timestamp})"


def decode_batch(batch: bytes) -> Iterator[Record]:
    """The records of an encoded batch (``wit/operator.wit``, ``types.encoded-batch``)."""
    pos, end = 0, len(batch)
    mv = memoryview(batch)
    while pos < end:
        (klen,) = _U32.unpack_from(batch, pos)
        pos += 4
        if klen == _NO_KEY:
            key = None
        else:
            key = bytes(mv[pos:pos + klen])
            pos += klen
        (vlen,) = _U32.unpack_from(batch, pos)
        pos += 4
        value = bytes(mv[pos:pos + vlen])
        pos += vlen
        (ts,) = _I64.unpack_from(batch, pos)
        pos += 8
        yield Record(key, value, ts)


def encode_record(buf: bytearray, key: Optional[bytes], value: bytes, timestamp: int) -> None:
    """Append one record to an encoded batch."""
    if key is None:
        buf += _U32.pack(_NO_KEY)
    else:
        buf += _U32.pack(len(key))
        buf += key
    buf += _U32.pack(len(value))
    buf += value
    buf += _I64.pack(timestamp)


class Window:
    """An event-time window ``[start, end)`` in ms."""

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int):
        self.start = start
        self.end = end


class Input:
    """Which input a record came from: its index and its name in the job spec (``main``
    for an operator whose spec lists its inputs without names)."""

    __slots__ = ("index", "name")

    def __init__(self, index: int, name: str):
        self.index = index
        self.name = name


_input_names: List[Optional[List[str]]] = [None]


def _input(index: int) -> Input:
    if _input_names[0] is None:
        _input_names[0] = list(_context.input_names())
    names = _input_names[0]
    return Input(index, names[index] if index < len(names) else f"input-{index}")


def input_index(name: str) -> Optional[int]:
    """The index of the input called ``name``, if the operator has one."""
    if _input_names[0] is None:
        _input_names[0] = list(_context.input_names())
    names = _input_names[0]
    return names.index(name) if name in names else None


class CoGroup:
    """The records of one fired window of the current key, per input."""

    def __init__(self, inputs: List[List[Record]]):
        self.inputs = inputs

    def input(self, index: int) -> List[Record]:
        """The window's records of input ``index``."""
        return self.inputs[index] if index < len(self.inputs) else []

    def named(self, name: str) -> List[Record]:
        """The window's records of the input called ``name``."""
        i = input_index(name)
        return [] if i is None else self.input(i)


def _domain(d: str) -> _types.TimeDomain:
    if d == EVENT_TIME:
        return _types.TimeDomain.EVENT_TIME
    if d == PROCESSING_TIME:
        return _types.TimeDomain.PROCESSING_TIME
    raise ValueError(f"unknown time domain {d!r}")


class Context:
    """What an operator can do while it runs: emit, read time, set timers, log.

    Emitted records are buffered and handed to the host when the current call returns.
    """

    def __init__(self) -> None:
        self._main = bytearray()
        self._side: dict = {}

    def emit(self, value: bytes, timestamp: int, key: Optional[bytes] = None) -> None:
        """Emit a record (raw value bytes) to the main output."""
        encode_record(self._main, key, value, timestamp)

    def emit_json(self, value: Any, timestamp: int, key: Optional[bytes] = None) -> None:
        """Emit ``value`` serialized as compact JSON to the main output."""
        self.emit(_json.dumps(value, separators=(",", ":")).encode(), timestamp, key)

    def emit_to(self, tag: str, value: bytes, timestamp: int, key: Optional[bytes] = None) -> None:
        """Emit a record to the side output ``tag`` (addressed as ``uid.tag`` in job specs)."""
        encode_record(self._side.setdefault(tag, bytearray()), key, value, timestamp)

    def emit_json_to(self, tag: str, value: Any, timestamp: int, key: Optional[bytes] = None) -> None:
        """Emit ``value`` as JSON to the side output ``tag``."""
        self.emit_to(tag, _json.dumps(value, separators=(",", ":")).encode(), timestamp, key)

    def current_key(self) -> Optional[bytes]:
        """The key of the record, timer or window being handled."""
        _sync_current_record()
        return _context.current_key()

    def current_watermark(self) -> int:
        """The current event-time watermark (very negative before the first one)."""
        return _timers.current_watermark()

    def current_processing_time(self) -> int:
        """The host's processing time, ms since the epoch."""
        return _timers.current_processing_time()

    def register_event_time_timer(self, timestamp: int) -> None:
        """Fire :meth:`Operator.on_timer` for the current key when the watermark passes ``timestamp``."""
        _sync_current_record()
        _timers.register(_types.TimeDomain.EVENT_TIME, timestamp)

    def delete_event_time_timer(self, timestamp: int) -> None:
        """Delete the current key's event-time timer at ``timestamp``."""
        _sync_current_record()
        _timers.delete(_types.TimeDomain.EVENT_TIME, timestamp)

    def register_processing_time_timer(self, timestamp: int) -> None:
        """Fire :meth:`Operator.on_timer` for the current key at processing time ``timestamp``."""
        _sync_current_record()
        _timers.register(_types.TimeDomain.PROCESSING_TIME, timestamp)

    def delete_processing_time_timer(self, timestamp: int) -> None:
        """Delete the current key's processing-time timer at ``timestamp``."""
        _sync_current_record()
        _timers.delete(_types.TimeDomain.PROCESSING_TIME, timestamp)

    def subtask_index(self) -> int:
        """This instance's index among the operator's parallel instances."""
        return _context.subtask_index()

    def parallelism(self) -> int:
        """How many parallel instances the operator has."""
        return _context.parallelism()

    def operator_uid(self) -> str:
        """The operator's ``uid`` in the job spec."""
        return _context.operator_uid()

    def attempt_number(self) -> int:
        """How many times the job restarted after a failure in this run (0 at first)."""
        return _context.attempt_number()

    def log(self, message: str, level: str = "info") -> None:
        """Write a line into the host's logs (``trace``, ``debug``, ``info``, ``warn``, ``error``)."""
        _context.log(getattr(_types.LogLevel, level.upper()), message)

    def _flush(self) -> None:
        if self._main:
            _collector.emit(bytes(self._main))
            self._main = bytearray()
        for tag, buf in self._side.items():
            if buf:
                _collector.emit_to(tag, bytes(buf))
        self._side = {}


def _ttl(ttl_ms: Optional[int]) -> Optional[int]:
    return None if ttl_ms is None else int(ttl_ms)


class ValueState:
    """One value per key, stored by the host (cached in the guest unless it has a TTL)."""

    def __init__(self, name: str, codec: Codec = JSON, ttl_ms: Optional[int] = None):
        self._h = _state.ValueState(name, _ttl(ttl_ms))
        self._c = codec
        self._cache = None if ttl_ms is not None else _Cache(lambda _sub: self._h.get(), self._store)

    def _store(self, _sub: Any, raw: Optional[bytes]) -> None:
        if raw is None:
            self._h.clear()
        else:
            self._h.set(raw)

    def _raw(self) -> Optional[bytes]:
        cur = _current() if self._cache is not None else None
        if cur is None:
            _sync_current_record()
            return self._h.get()
        return self._cache.get(cur[0], None)

    def _write(self, raw: Optional[bytes]) -> None:
        cur = _current() if self._cache is not None else None
        if cur is None:
            _sync_current_record()
            self._store(None, raw)
        else:
            self._cache.put(cur[0], None, raw, cur[1])

    def get(self, default: Any = None) -> Any:
        """The current key's value, or ``default``."""
        raw = self._raw()
        return default if raw is None else self._c.decode(raw)

    def set(self, value: Any) -> None:
        """Set the current key's value."""
        self._write(self._c.encode(value))

    def clear(self) -> None:
        """Remove the current key's value."""
        self._write(None)


class ListState:
    """A list per key, stored by the host."""

    def __init__(self, name: str, codec: Codec = JSON, ttl_ms: Optional[int] = None):
        self._h = _state.ListState(name, _ttl(ttl_ms))
        self._c = codec

    def get(self) -> List[Any]:
        """The current key's elements, in insertion order."""
        _sync_current_record()
        return [self._c.decode(b) for b in self._h.get()]

    def add(self, value: Any) -> None:
        """Append an element to the current key's list."""
        _sync_current_record()
        self._h.add(self._c.encode(value))

    def update(self, values: List[Any]) -> None:
        """Replace the current key's list."""
        _sync_current_record()
        self._h.update([self._c.encode(v) for v in values])

    def clear(self) -> None:
        """Clear the current key's list."""
        _sync_current_record()
        self._h.clear()


class MapState:
    """A map per key, stored by the host; keys and values have their own codecs. Single
    entries are cached in the guest (unless it has a TTL); whole-map operations go to
    the host after writing the map's pending changes back."""

    def __init__(self, name: str, key_codec: Codec = JSON, value_codec: Codec = JSON, ttl_ms: Optional[int] = None):
        self._h = _state.MapState(name, _ttl(ttl_ms))
        self._k = key_codec
        self._v = value_codec
        self._cache = None if ttl_ms is not None else _Cache(self._h.get, self._store)

    def _store(self, sub: bytes, raw: Optional[bytes]) -> None:
        if raw is None:
            self._h.remove(sub)
        else:
            self._h.put(sub, raw)

    def _raw(self, sub: bytes) -> Optional[bytes]:
        cur = _current() if self._cache is not None else None
        if cur is None:
            _sync_current_record()
            return self._h.get(sub)
        return self._cache.get((cur[0], sub), sub)

    def _write(self, sub: bytes, raw: Optional[bytes]) -> None:
        cur = _current() if self._cache is not None else None
        if cur is None:
            _sync_current_record()
            self._store(sub, raw)
        else:
            self._cache.put((cur[0], sub), sub, raw, cur[1])

    def _whole(self, forget: bool = False) -> Any:
        """The host handle for a whole-map operation, this map's pending changes written first."""
        if self._cache is not None:
            self._cache.write_back()
            if forget:
                self._cache.entries.clear()
            # The write-back may have made another record current: this one again.
            if _scope[0] == 1:
                _pending_record[0] = _scope[1]
        _sync_current_record()
        return self._h

    def get(self, key: Any, default: Any = None) -> Any:
        """The value under ``key`` in the current key's map, or ``default``."""
        raw = self._raw(self._k.encode(key))
        return default if raw is None else self._v.decode(raw)

    def put(self, key: Any, value: Any) -> None:
        """Insert or replace ``key``."""
        self._write(self._k.encode(key), self._v.encode(value))

    def remove(self, key: Any) -> None:
        """Remove ``key``."""
        self._write(self._k.encode(key), None)

    def contains(self, key: Any) -> bool:
        """Whether the map holds ``key``."""
        return self._raw(self._k.encode(key)) is not None

    def keys(self) -> List[Any]:
        """All keys of the current key's map."""
        return [self._k.decode(k) for k in self._whole().keys()]

    def entries(self) -> List[Tuple[Any, Any]]:
        """All entries of the current key's map."""
        return [(self._k.decode(k), self._v.decode(v)) for k, v in self._whole().entries()]

    def clear(self) -> None:
        """Clear the current key's map."""
        self._whole(forget=True).clear()


class BroadcastMapState:
    """A map every parallel instance holds the same copy of (broadcast state); written
    only in :meth:`Operator.process_broadcast` (a write anywhere else traps)."""

    def __init__(self, name: str, key_codec: Codec = JSON, value_codec: Codec = JSON):
        self._h = _broadcast.BroadcastMap(name)
        self._k = key_codec
        self._v = value_codec

    def get(self, key: Any, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        raw = self._h.get(self._k.encode(key))
        return default if raw is None else self._v.decode(raw)

    def put(self, key: Any, value: Any) -> None:
        """Insert or replace ``key`` (only in ``process_broadcast``)."""
        self._h.put(self._k.encode(key), self._v.encode(value))

    def remove(self, key: Any) -> None:
        """Remove ``key`` (only in ``process_broadcast``)."""
        self._h.remove(self._k.encode(key))

    def entries(self) -> List[Tuple[Any, Any]]:
        """Every entry, in the byte order of the encoded keys."""
        return [(self._k.decode(k), self._v.decode(v)) for k, v in self._h.entries()]

    def clear(self) -> None:
        """Remove every entry (only in ``process_broadcast``)."""
        self._h.clear()


class StateEntry:
    """One entry of old state handed to :meth:`Operator.migrate_state`.

    ``kind`` is ``"value"`` (``value`` holds bytes), ``"list"`` (a list of bytes) or
    ``"map"`` (``value`` is a ``(user_key, value)`` tuple of bytes).
    """

    def __init__(self, state: str, key: bytes, kind: str, value: Any):
        self.state = state
        self.key = key
        self.kind = kind
        self.value = value


class Operator:
    """A stream operator. Override :meth:`process` (or the handler for what the job spec
    gives the operator: :meth:`process_input`, :meth:`join`, :meth:`co_group`,
    :meth:`process_broadcast`); everything else is optional."""

    #: The version of this operator's state format.
    STATE_VERSION = 1

    def open(self, ctx: Context, config: Any) -> None:
        """Called once before any record; ``config`` is the spec's ``config`` (parsed JSON). Declare state here."""

    def process(self, ctx: Context, record: Record) -> None:
        """Handle one record; state and timers are scoped to its key."""
        raise NotImplementedError("process")

    def process_input(self, ctx: Context, input: Input, record: Record) -> None:
        """Handle one record of a (non-broadcast) input; by default :meth:`process`."""
        self.process(ctx, record)

    def process_broadcast(self, ctx: Context, input: Input, record: Record) -> None:
        """Handle one record of a broadcast input (may change broadcast state; no current key)."""
        raise NotImplementedError(f"this operator does not implement process_broadcast (input {input.name!r})")

    def process_window(self, ctx: Context, window: Window, records: List[Record]) -> None:
        """Handle the records of one fired window of the current key (windowed operators)."""
        raise NotImplementedError("this operator does not implement process_window")

    def co_group(self, ctx: Context, window: Window, inputs: CoGroup) -> None:
        """One fired window of the current key with its records per input; by default, for one input, :meth:`process_window`."""
        if len(inputs.inputs) != 1:
            raise NotImplementedError("this operator has several inputs and a window but does not implement co_group")
        self.process_window(ctx, window, inputs.inputs[0])

    def join(self, ctx: Context, left: Record, right: Record) -> None:
        """One pair of the host's interval join (same key; state scoped to it)."""
        raise NotImplementedError("this operator does not implement join")

    def on_timer(self, ctx: Context, timestamp: int, domain: str) -> None:
        """A timer of the current key fired (``domain`` is EVENT_TIME or PROCESSING_TIME)."""

    def on_watermark(self, ctx: Context, watermark: int) -> None:
        """The watermark advanced."""

    def close(self, ctx: Context) -> None:
        """The input ended or the job stops."""

    @staticmethod
    def migrate_state(from_version: int, entry: StateEntry) -> List[StateEntry]:
        """Upgrade one entry of state written under ``from_version``; the default keeps it."""
        return [entry]


def _failure(where: str) -> Err:
    # The host prefixes the call's name; the message is the Python traceback.
    del where
    return Err(_traceback.format_exc().strip())


def export(cls: type) -> type:
    """The class componentize-py exports for the ``operator`` interface, driving ``cls``."""

    class _Export:
        _op: Optional[Operator] = None
        _ctx: Optional[Context] = None

        def _call(self, where: str, f: Callable[[], None]) -> None:
            ctx = _Export._ctx
            if ctx is None:
                raise Err(f"{where}: operator called before open")
            _pending_record[0] = None
            _scope[0] = 0
            try:
                f()
                _write_back()
            except Exception:
                ctx._main = bytearray()
                ctx._side = {}
                _forget_all()
                raise _failure(where)
            finally:
                _pending_record[0] = None
            ctx._flush()

        def open(self, config: str) -> None:
            try:
                parsed = _json.loads(config) if config.strip() else None
                ctx = Context()
                op = cls()
                op.open(ctx, parsed)
            except Exception:
                raise _failure("open")
            _Export._op, _Export._ctx = op, ctx
            ctx._flush()

        def process(self, input: int, batch: bytes) -> None:
            def run() -> None:
                op, ctx = _Export._op, _Export._ctx
                which = _input(input)
                for i, record in enumerate(decode_batch(batch)):
                    _pending_record[0] = i
                    _enter_record(i, record.key)
                    op.process_input(ctx, which, record)
            self._call("process", run)

        def process_broadcast(self, input: int, batch: bytes) -> None:
            def run() -> None:
                op, ctx = _Export._op, _Export._ctx
                which = _input(input)
                for record in decode_batch(batch):
                    op.process_broadcast(ctx, which, record)
            self._call("process_broadcast", run)

        def process_window(self, window: _types.Window, inputs: List[bytes]) -> None:
            groups = CoGroup([list(decode_batch(b)) for b in inputs])

            def run() -> None:
                _enter_call()
                _Export._op.co_group(_Export._ctx, Window(window.start, window.end), groups)
            self._call("process_window", run)

        def process_join(self, left: bytes, right: bytes) -> None:
            def run() -> None:
                op, ctx = _Export._op, _Export._ctx
                for i, (l, r) in enumerate(zip(decode_batch(left), decode_batch(right))):
                    _pending_record[0] = i
                    _enter_record(i, l.key)
                    op.join(ctx, l, r)
            self._call("process_join", run)

        def on_timer(self, timestamp: int, domain: _types.TimeDomain) -> None:
            d = EVENT_TIME if domain == _types.TimeDomain.EVENT_TIME else PROCESSING_TIME

            def run() -> None:
                _enter_call()
                _Export._op.on_timer(_Export._ctx, timestamp, d)
            self._call("on_timer", run)

        def on_watermark(self, watermark: int) -> None:
            self._call("on_watermark", lambda: _Export._op.on_watermark(_Export._ctx, watermark))

        def close(self) -> None:
            self._call("close", lambda: _Export._op.close(_Export._ctx))

        def state_version(self) -> int:
            return int(cls.STATE_VERSION)

        def migrate_state(self, from_version: int, entries: List[_types.StateEntry]) -> List[_types.StateEntry]:
            out: List[_types.StateEntry] = []
            try:
                for e in entries:
                    v = e.value
                    if isinstance(v, _types.StateValue_Value):
                        se = StateEntry(e.state, e.key, "value", v.value)
                    elif isinstance(v, _types.StateValue_List):
                        se = StateEntry(e.state, e.key, "list", list(v.value))
                    else:
                        se = StateEntry(e.state, e.key, "map", tuple(v.value))
                    for m in cls.migrate_state(from_version, se):
                        if m.kind == "value":
                            wv: Any = _types.StateValue_Value(bytes(m.value))
                        elif m.kind == "list":
                            wv = _types.StateValue_List([bytes(x) for x in m.value])
                        else:
                            wv = _types.StateValue_MapEntry((bytes(m.value[0]), bytes(m.value[1])))
                        out.append(_types.StateEntry(m.state, bytes(m.key), wv))
            except Exception:
                raise _failure("migrate_state")
            return out

    _Export.__name__ = "Operator"
    return _Export
