"""The vocabulary: events and commands are closed unions of frozen, keyword-only attrs classes
whose ``repr`` is valid Python (house style).

Frozen values are what make "only ``step`` changes state" true (failure `shared-mutable-state`: shared state
mutated by many tasks). A ``repr`` that evaluates back to an equal object is what lets a failing
property test or a journal entry be pasted into a test as a program.
"""

from __future__ import annotations

import inspect
import typing
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gridcore
from gridcore import commands, events, instruments
from tests.property.helpers import instances_of

#: Attrs classes of ``gridcore.events`` that are parts of events, not events themselves.
EVENT_PAYLOADS = frozenset({events.Fill, events.OpenOrder, events.PositionReport})


def _attrs_classes(module: Any) -> set[type[Any]]:
    return {
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and attrs.has(obj) and obj.__module__ == module.__name__
    }


EVENT_CLASSES = sorted(_attrs_classes(events) - EVENT_PAYLOADS, key=lambda c: c.__name__)
COMMAND_CLASSES = sorted(_attrs_classes(commands), key=lambda c: c.__name__)
VOCABULARY = EVENT_CLASSES + sorted(EVENT_PAYLOADS, key=lambda c: c.__name__) + COMMAND_CLASSES

NAMESPACE: dict[str, Any] = {
    **vars(events),
    **vars(commands),
    **vars(instruments),
    "Decimal": Decimal,
}


def test_event_union_lists_every_event_class() -> None:
    """A class missing from the union is an event the reducer's ``match`` never handles."""
    assert set(typing.get_args(events.Event)) == set(EVENT_CLASSES)
    assert len(EVENT_CLASSES) >= 25


def test_command_union_lists_every_command_class() -> None:
    """A class missing from the union is a command the shells are never asked to carry out."""
    assert set(typing.get_args(commands.Command)) == set(COMMAND_CLASSES)
    assert len(COMMAND_CLASSES) >= 13


def test_payloads_are_not_events() -> None:
    """Guards :data:`EVENT_PAYLOADS`: a payload listed here must really be outside the union."""
    assert EVENT_PAYLOADS.isdisjoint(typing.get_args(events.Event))


def test_public_package_exports_the_whole_vocabulary() -> None:
    """Users import events and commands from ``gridcore``: none may be missing there."""
    for cls in VOCABULARY:
        assert getattr(gridcore, cls.__name__) is cls


@pytest.mark.parametrize("cls", VOCABULARY, ids=lambda c: c.__name__)
def test_fields_are_keyword_only(cls: type[Any]) -> None:
    """Positional construction would silently swap same-typed fields (a price for a qty)."""
    parameters = inspect.signature(cls).parameters.values()
    assert parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)


@pytest.mark.parametrize("cls", VOCABULARY, ids=lambda c: c.__name__)
def test_classes_are_slotted(cls: type[Any]) -> None:
    """Slotted classes take no stray attributes (a typo cannot add state)."""
    assert "__slots__" in vars(cls)


@pytest.mark.parametrize("cls", VOCABULARY, ids=lambda c: c.__name__)
@given(data=st.data())
def test_values_are_frozen_and_repr_evaluates_to_an_equal_value(
    cls: type[Any], data: st.DataObject
) -> None:
    """Failure `shared-mutable-state`: values shared between steps must not be mutable. house style:
    a printed event or command is a program that rebuilds it."""
    value = data.draw(instances_of(cls))
    for field in attrs.fields(cls):
        before = getattr(value, field.name)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(value, field.name, before)
    rebuilt = eval(repr(value), dict(NAMESPACE))
    assert rebuilt == value
    assert type(rebuilt) is cls
