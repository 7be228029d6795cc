"""The codec: gridcore values to bytes and back, for the journal.

Theory of operation
-------------------
Two forms, both msgpack through msgspec:

* **Events and commands** (the hot path, one per journaled event) are encoded by msgspec
  natively: an attrs instance becomes a map of its fields, ``Decimal`` an exact string, an enum
  its value. The journal stores the class name beside the payload (the ``kind`` column), and
  decoding is typed: ``msgspec.msgpack.Decoder(kind_class)``, which rebuilds nested attrs values
  (``Fill`` inside ``OrderFilled``, the tuple of ``OpenOrder`` in a report) exactly. Measured on
  this machine: ≈ 1.2 µs to encode and ≈ 2 µs to decode an ``OrderFilled``, against ≈ 20 µs to
  encode it with ``json.dumps(attrs.asdict(...))`` (which would also lose the types and need a
  hand-written decoder) — see ``benchmarks/bench_journal.py``.
* **Any other value** — a whole :class:`~gridcore.core.State` (snapshots), with its strategy,
  ``CoreConfig``, mappings keyed by tuples such as ``ledger.positions`` keyed by
  ``(venue, symbol, PositionSide)``, frozensets and enums — goes through a *tagged* form: every
  container is a msgpack array whose first element says what it is (``["D", "0.1"]`` a
  ``Decimal``, ``["t", ...]`` a tuple, ``["m", k1, v1, ...]`` a mapping, ``["E", name, member]``
  an enum member, ``["O", name, {field: value}]`` an attrs instance). Strings, integers, floats,
  booleans, bytes and ``None`` are themselves. Mapping order is kept (the core iterates dicts in
  insertion order, so a recovered state must iterate like the live one).

Classes are resolved through an explicit registry, never by importing a name found in a file: a
journal is data, and data must not choose code to run. Every attrs class and enum of gridcore's
state, event and command modules is registered at import. A strategy's classes come from the
strategy registry (:mod:`gridcore.registry`): each kind declares the classes its state holds
and the names they are stored under (the grid's go by their bare names), and kinds registered
after this module was imported are adopted the first time one of their classes or names is
met. Anything else a state holds is added with :func:`register`. attrs instances are rebuilt through ``__init__``
with their ``init=True`` fields only, so derived fields (``CoreConfig.by_key``, computed in
``__attrs_post_init__``) are recomputed rather than trusted. A class whose stored form changed
says how to read the old one: a classmethod ``upgrade_stored(fields) -> fields`` takes the
decoded field map of a stored instance that has fields the class no longer knows and returns
today's map (the funding arbitrage's state moved its per-pair fields into one book per pair,
and journals written before that still resume).

Errors: a value of an unregistered type raises :class:`CodecError` when encoded (so nothing is
written that could not be read back). Decoding is total over hostile bytes: whatever a forged or
damaged payload makes the decoder or a class's ``__init__`` raise (bytes that are not msgpack, an
unknown tag or class name, nesting deep enough for a ``RecursionError``, a malformed
``Decimal``, an integer out of range, a validator's refusal) comes out as :class:`CodecError`,
never as another exception and never as something that reads like a configuration mistake. The
journal turns those into a :class:`CodecError` that names the file and the row.

:class:`CodecError` derives from :class:`JournalError` (defined here, re-exported by
``gridcore.shells.journal``) so that one ``except JournalError`` covers every journal failure.
"""

from __future__ import annotations

import enum
import types
import typing
import weakref
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import msgspec

import gridcore.api
import gridcore.commands
import gridcore.config
import gridcore.core
import gridcore.events
import gridcore.halts
import gridcore.instruments
import gridcore.ledger
import gridcore.lifecycle
import gridcore.plausibility
import gridcore.registry
import gridcore.risk
import gridcore.saga
import gridcore.sync
from gridcore.commands import Batch, Command
from gridcore.events import Event

__all__ = [
    "COMMAND_CLASSES",
    "EVENT_CLASSES",
    "CodecError",
    "JournalDamaged",
    "JournalError",
    "canonical",
    "decode_command",
    "decode_event",
    "decode_value",
    "encode_command",
    "encode_event",
    "encode_value",
    "event_decoders",
    "register",
    "registered",
]


class JournalError(Exception):
    """The journal cannot be used as it is: corrupt, of another schema version, not a journal,
    in use by another process, or asked to do something that would lose or duplicate data. The
    message names the file and says what to do."""


class JournalDamaged(JournalError):
    """The journal's content fails verification (a checksum, the sequence, SQLite's own
    integrity check, or the committed high-water mark): committed data is missing or altered.
    Never resume trading on it."""


class CodecError(JournalError, ValueError):
    """A value cannot be encoded (unregistered type) or bytes cannot be decoded."""


def _undecodable(what: str, exc: BaseException) -> CodecError:
    if isinstance(exc, CodecError):
        return CodecError(f"{what}: {exc}")
    if isinstance(exc, RecursionError):
        return CodecError(f"{what}: nested too deeply to be a gridcore value")
    text = str(exc) or "no detail"
    return CodecError(f"{what} does not decode ({type(exc).__name__}: {text[:200]})")


# --- the registry ---------------------------------------------------------------------------

_BY_NAME: dict[str, type] = {}
_BY_CLASS: dict[type, str] = {}
# Per attrs class: (tag name, ((field name, __init__ keyword), ...)) for init fields only.
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}
#: Classes that read their own older stored form (their ``upgrade_stored`` classmethod).
_UPGRADES: dict[type, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def register(cls: type, name: str | None = None) -> type:
    """Allow ``cls`` (an attrs class or an enum) in encoded values; returns ``cls``.

    ``name`` is what the journal stores (default ``module.QualName``); it must stay stable for
    as long as journals holding it are kept. Registering the same class twice under the same
    name is harmless; reusing a name for another class raises :class:`CodecError`. Usable as a
    decorator on a user strategy::

        @register
        @attrs.frozen(kw_only=True)
        class MyStrategy: ...
    """
    if not (attrs.has(cls) or (isinstance(cls, type) and issubclass(cls, enum.Enum))):
        raise CodecError(
            f"{cls!r} is neither an attrs class nor an enum; only those can be journaled"
        )
    tag = name or f"{cls.__module__}.{cls.__qualname__}"
    known = _BY_NAME.get(tag)
    if known is not None and known is not cls:
        raise CodecError(
            f"codec name {tag!r} is taken by {known.__module__}.{known.__qualname__}; "
            f"register {cls.__qualname__} under another name"
        )
    if cls in _BY_CLASS and _BY_CLASS[cls] != tag:
        raise CodecError(f"{cls.__qualname__} is registered already as {_BY_CLASS[cls]!r}")
    _BY_NAME[tag] = cls
    _BY_CLASS[cls] = tag
    if attrs.has(cls):
        _FIELDS[cls] = tuple((f.name, f.alias or f.name) for f in attrs.fields(cls) if f.init)
        upgrade = getattr(cls, "upgrade_stored", None)
        if upgrade is not None:
            _UPGRADES[cls] = upgrade
    return cls


def registered() -> Mapping[str, type]:
    """Every registered name and its class (read-only view)."""
    return types.MappingProxyType(_BY_NAME)


_GRIDCORE_MODULES = (
    gridcore.instruments,
    gridcore.halts,
    gridcore.events,
    gridcore.commands,
    gridcore.lifecycle,
    gridcore.ledger,
    gridcore.risk,
    gridcore.sync,
    gridcore.plausibility,
    gridcore.core,
    gridcore.api,
    gridcore.saga,
    gridcore.config,
)

for _module in _GRIDCORE_MODULES:
    for _member in list(vars(_module).values()):
        if (
            isinstance(_member, type)
            # gridcore.core is the facade of gridcore.kernel: its classes are defined there.
            and (_member.__module__ == _module.__name__ or _module is gridcore.core)
            and (attrs.has(_member) or issubclass(_member, enum.Enum))
        ):
            # gridcore's own classes go by their bare name: short, and stable across moves
            # between gridcore modules.
            register(_member, _member.__name__)

# --- strategies: the registry says which classes a strategy's state holds ------------------

_ADOPTED: dict[str, object] = {}


def _adopt_strategies() -> bool:
    """Register the codec classes of every strategy kind of :mod:`gridcore.registry` not seen
    yet (the grid's, and any kind a user module registered since); True if any was new.

    Called at import and again whenever a class or name is not found, so a strategy registered
    after this module was imported is still journaled, at no cost on the hot path."""
    new = False
    for name, kind in gridcore.registry.registered().items():
        if _ADOPTED.get(name) is kind:
            continue
        for tag, cls in kind.codec_classes.items():
            register(cls, tag)
        _ADOPTED[name] = kind
        new = True
    return new


_adopt_strategies()

#: Event classes by name (the members of the closed ``Event`` union).
EVENT_CLASSES: Mapping[str, type] = types.MappingProxyType(
    {cls.__name__: cls for cls in typing.get_args(Event)}
)
#: Command classes by name (the members of the closed ``Command`` union).
COMMAND_CLASSES: Mapping[str, type] = types.MappingProxyType(
    {cls.__name__: cls for cls in typing.get_args(Command)}
)

# --- events and commands: msgspec native, typed decoding -----------------------------------

_encoder = msgspec.msgpack.Encoder()
_EVENT_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    name: msgspec.msgpack.Decoder(cls) for name, cls in EVENT_CLASSES.items()
}
_COMMAND_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    name: msgspec.msgpack.Decoder(cls)
    for name, cls in COMMAND_CLASSES.items()
    if cls is not Batch  # a batch's inner union cannot be decoded untagged: tagged form
}


def encode_event(event: Event) -> tuple[str, bytes]:
    """``(kind, payload)`` of one event."""
    return type(event).__name__, _encoder.encode(event)


def decode_event(kind: str, payload: bytes) -> Event:
    """The event stored as ``(kind, payload)``; :class:`CodecError` when it cannot be."""
    decoder = _EVENT_DECODERS.get(kind)
    if decoder is None:
        raise CodecError(f"unknown event kind {kind!r}")
    try:
        event: Event = decoder.decode(payload)
    except Exception as exc:  # hostile bytes: whatever the decoder or __init__ raised
        raise _undecodable(f"{kind} payload", exc) from None
    return event


def event_decoders() -> dict[str, Callable[[bytes], Event]]:
    """The bare decoding function of every event kind, by kind: for a reader of many rows
    (the journal's) that looks each up in one dict access. Whatever one raises, the row's
    :func:`decode_event` raises as a :class:`CodecError`; call that for the message."""
    return {name: decoder.decode for name, decoder in _EVENT_DECODERS.items()}


def encode_command(command: Command) -> tuple[str, bytes]:
    """``(kind, payload)`` of one command (a ``Batch`` uses the tagged form)."""
    if type(command) is Batch:
        return "Batch", encode_value(command)
    return type(command).__name__, _encoder.encode(command)


def decode_command(kind: str, payload: bytes) -> Command:
    """The command stored as ``(kind, payload)``; :class:`CodecError` when it cannot be."""
    if kind == "Batch":
        value = decode_value(payload)
        if type(value) is not Batch:
            raise CodecError(f"Batch payload decodes to {type(value).__name__}")
        return value
    decoder = _COMMAND_DECODERS.get(kind)
    if decoder is None:
        raise CodecError(f"unknown command kind {kind!r}")
    try:
        command: Command = decoder.decode(payload)
    except Exception as exc:  # hostile bytes: whatever the decoder or __init__ raised
        raise _undecodable(f"{kind} payload", exc) from None
    return command


# --- any registered value: the tagged form ---------------------------------------------------

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1


def _to_tagged(value: Any) -> Any:
    tp = type(value)
    if tp is str or tp is bool or value is None or tp is float or tp is bytes:
        return value
    if tp is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        return ["I", str(value)]
    if tp is Decimal:
        return ["D", str(value)]
    if tp is tuple:
        return ["t", *map(_to_tagged, value)]
    if tp is dict or tp is types.MappingProxyType:
        out: list[Any] = ["m"]
        for k, v in value.items():
            out.append(_to_tagged(k))
            out.append(_to_tagged(v))
        return out
    if tp is frozenset:
        return ["f", *map(_to_tagged, value)]
    if tp is list:
        return ["l", *map(_to_tagged, value)]
    if tp is set:
        return ["s", *map(_to_tagged, value)]
    fields = _FIELDS.get(tp)
    if fields is not None:
        return ["O", _BY_CLASS[tp], {name: _to_tagged(getattr(value, name)) for name, _ in fields}]
    name = _BY_CLASS.get(tp)
    if name is not None:  # an enum member (attrs classes were handled above)
        return ["E", name, value.name]
    if _adopt_strategies():  # a strategy kind registered since: its classes may be known now
        return _to_tagged(value)
    raise CodecError(
        f"cannot encode a value of type {tp.__module__}.{tp.__qualname__}: register it with "
        f"shells.codec.register (attrs classes and enums only)"
    )


def _obj(item: list[Any]) -> Any:
    name = item[1]
    cls = _BY_NAME.get(name)
    if cls is None and type(name) is str and _adopt_strategies():
        cls = _BY_NAME.get(name)
    fields = _FIELDS.get(cls) if cls is not None else None
    if cls is None or fields is None:
        raise CodecError(
            f"unknown class {name!r} in payload; if it is your strategy, register its kind "
            f"(gridcore.registry.register, imported through [strategy] module) or call "
            f"shells.codec.register on it before opening the journal"
        )
    data = item[2]
    if type(data) is not dict:
        raise CodecError(f"malformed {name} object: fields are not a map")
    known = dict(fields)
    stored = {key: _from_tagged(raw) for key, raw in data.items()}
    upgrade = _UPGRADES.get(cls)
    if upgrade is not None and not known.keys() >= stored.keys():
        # The class was stored by an older gridcore: it says how its old fields map to today's.
        try:
            stored = upgrade(stored)
        except Exception as exc:
            raise CodecError(
                f"cannot upgrade stored {name} ({type(exc).__name__}: {exc})"
            ) from None
    kwargs: dict[str, Any] = {}
    for key, value in stored.items():
        alias = known.get(key)
        if alias is None:
            raise CodecError(f"{name} has no field {key!r} (a newer or different class?)")
        kwargs[alias] = value
    try:
        return cls(**kwargs)
    except Exception as exc:  # a validator's refusal of forged data is not a config mistake
        raise CodecError(
            f"cannot rebuild {name} from stored data ({type(exc).__name__}: {exc})"
        ) from None


def _enum(item: list[Any]) -> Any:
    cls = _BY_NAME.get(item[1])
    if cls is None and type(item[1]) is str and _adopt_strategies():
        cls = _BY_NAME.get(item[1])
    if cls is None or not issubclass(cls, enum.Enum):
        raise CodecError(f"unknown enum {item[1]!r} in payload")
    try:
        return cls[item[2]]
    except (KeyError, TypeError):
        raise CodecError(f"{item[1]} has no member {item[2]!r}") from None


def _mapping(item: list[Any]) -> dict[Any, Any]:
    if len(item) % 2 != 1:
        raise CodecError("malformed mapping: odd number of keys and values")
    out: dict[Any, Any] = {}
    for i in range(1, len(item), 2):
        out[_from_tagged(item[i])] = _from_tagged(item[i + 1])
    return out


_TAGS: dict[str, Callable[[list[Any]], Any]] = {
    "D": lambda item: Decimal(item[1]),
    "t": lambda item: tuple(map(_from_tagged, item[1:])),
    "m": _mapping,
    "f": lambda item: frozenset(map(_from_tagged, item[1:])),
    "l": lambda item: list(map(_from_tagged, item[1:])),
    "s": lambda item: set(map(_from_tagged, item[1:])),
    "O": _obj,
    "E": _enum,
    "I": lambda item: int(item[1]),
}


def _from_tagged(raw: Any) -> Any:
    if type(raw) is not list:
        return raw
    if not raw or type(raw[0]) is not str:
        raise CodecError("malformed payload: an array without a tag")
    handler = _TAGS.get(raw[0])
    if handler is None:
        raise CodecError(f"malformed payload: unknown tag {raw[0]!r}")
    try:
        return handler(raw)
    except CodecError:
        raise
    except (IndexError, ArithmeticError, TypeError, ValueError, KeyError) as exc:
        raise CodecError(f"malformed {raw[0]!r} item: {type(exc).__name__}: {exc}") from None


def encode_value(value: Any) -> bytes:
    """Bytes of any value built from registered classes, enums and builtins (tagged form)."""
    return _encoder.encode(_to_tagged(value))


# The canonical form is computed for every snapshot a journal writes and every one a replay
# compares (a whole State: hundreds of orders and fields), so it dispatches on the exact type
# through one dict and walks each attrs class with a function generated for it (no per-field
# loop over ``_FIELDS``, leaves returned inline). The result is the same tree, element for
# element, as ``_to_tagged`` with sorted sets; ``tests/property/test_codec_canonical.py``
# checks it against the plain recursive definition.
_LEAVES = frozenset({str, bool, type(None), float, bytes})
_CANONICAL: dict[type, Callable[[Any], Any]] = {}


def _to_canonical(value: Any) -> Any:
    """:func:`_to_tagged` with the members of every set sorted by their encoded bytes (inner
    sets first), in one pass."""
    tp = type(value)
    if tp in _LEAVES:
        return value
    handler = _CANONICAL.get(tp)
    if handler is None:
        handler = _canonical_handler(tp)
        if handler is None:
            return _to_tagged(value)  # out-of-range ints, strategies adopted late, the errors
    return handler(value)


def _canonical_set(value: Any) -> list[Any]:
    items = sorted(map(_to_canonical, value), key=_encoder.encode)
    return ["f" if type(value) is frozenset else "s", *items]


def _canonical_mapping(value: Any) -> list[Any]:
    out: list[Any] = ["m"]
    for k, v in value.items():
        out.append(_to_canonical(k))
        out.append(_to_canonical(v))
    return out


def _canonical_int(value: int) -> Any:
    return value if _INT_MIN <= value <= _INT_MAX else ["I", str(value)]


def _canonical_handler(tp: type) -> Callable[[Any], Any] | None:
    """The canonical-form function of ``tp`` (built once per type), or ``None`` when
    :func:`_to_tagged` must decide (unregistered or late-registered types, errors)."""
    handler: Callable[[Any], Any]
    if tp is frozenset or tp is set:
        handler = _canonical_set
    elif tp is tuple:
        handler = lambda v: ["t", *map(_to_canonical, v)]  # noqa: E731
    elif tp is list:
        handler = lambda v: ["l", *map(_to_canonical, v)]  # noqa: E731
    elif tp is dict or tp is types.MappingProxyType:
        handler = _canonical_mapping
    elif tp is int:
        handler = _canonical_int
    elif tp is Decimal:
        handler = lambda v: ["D", str(v)]  # noqa: E731
    elif tp in _FIELDS:
        handler = _canonical_attrs(tp, _FIELDS[tp])
        if getattr(tp, "__setattr__", None) is _FROZEN_SETATTR:
            handler = _remembered(handler)
    elif tp in _BY_CLASS and issubclass(tp, enum.Enum):
        name = _BY_CLASS[tp]
        handler = lambda v: ["E", name, v.name]  # noqa: E731
    else:
        return None
    _CANONICAL[tp] = handler
    return handler


_FROZEN_SETATTR = getattr(attrs.frozen(type("_Frozen", (), {})), "__setattr__", None)
_ATOM_TAGS = frozenset({"D", "E", "I"})


def _remembered(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``handler`` (a frozen attrs class's) remembering, for as long as each instance lives,
    the canonical form of the instances whose fields are all atoms (strings, numbers,
    ``Decimal``, enum members, ``None``): nothing in such an instance can change, so its form
    cannot either. A state's orders are such values, and most of them are the same objects
    from one snapshot to the next (a replay compares one every 1,024 events): about half of
    the canonical encoding of a paper state is saved. The same object is recognised by
    identity through a weak reference (an id alone may be reused by a newer object); equal
    but distinct values (``Decimal`` 1.0 and 1.00) are never confused."""
    known: dict[int, tuple[weakref.ReferenceType[Any], Any]] = {}

    def forget(ref: weakref.ReferenceType[Any], key: int) -> None:
        entry = known.get(key)
        if entry is not None and entry[0] is ref:
            del known[key]

    def canonical_remembered(v: Any) -> Any:
        entry = known.get(id(v))
        if entry is not None and entry[0]() is v:
            return entry[1]
        tree = handler(v)
        for x in tree[2].values():
            if type(x) is list and x[0] not in _ATOM_TAGS:
                return tree
        key = id(v)
        try:
            ref = weakref.ref(v, lambda r: forget(r, key))
        except TypeError:  # a class without weak references: not remembered
            return tree
        known[key] = (ref, tree)
        return tree

    return canonical_remembered


def _canonical_attrs(tp: type, fields: tuple[tuple[str, str], ...]) -> Callable[[Any], Any]:
    """``["O", name, {field: canonical value, ...}]`` of an attrs instance, as one generated
    function: each field read once, leaves kept inline, anything else through
    :func:`_to_canonical`."""
    scope: dict[str, Any] = {"_LEAVES": _LEAVES, "_C": _to_canonical, "_NAME": _BY_CLASS[tp]}
    items = ", ".join(
        f"{name!r}: (x if type(x := v.{name}) in _LEAVES else _C(x))" for name, _ in fields
    )
    exec(f"def canonical_attrs(v):\n    return ['O', _NAME, {{{items}}}]", scope)
    handler: Callable[[Any], Any] = scope["canonical_attrs"]
    return handler


def canonical(value: Any) -> bytes:
    """Bytes that are equal exactly when two values are the same representation: like
    :func:`encode_value` with set members sorted. Stricter than ``==``, which calls
    ``Decimal("1.0")`` and ``Decimal("1.00")`` equal although they round differently later."""
    return _encoder.encode(_to_canonical(value))


_raw_decoder = msgspec.msgpack.Decoder()


def decode_value(payload: bytes) -> Any:
    """The value :func:`encode_value` encoded; :class:`CodecError` when it cannot be rebuilt."""
    try:
        raw = _raw_decoder.decode(payload)
    except Exception as exc:
        raise _undecodable("payload (not msgpack)", exc) from None
    try:
        return _from_tagged(raw)
    except Exception as exc:  # hostile bytes: RecursionError, a refusing __init__, ...
        raise _undecodable("payload", exc) from None
