"""Payload sealing in tests: the session's key ring (tests/conftest.py puts a fresh one in
DUECOURSE_PAYLOAD_KEYS, so CLI subprocesses inherit it) and its data converter, which
every test client, worker and replayer uses - as production does."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.converter import DataConverter

from duecourse.security.payload_codec import EncryptionCodec
from duecourse.security.payload_keys import (
    KeyRing,
    new_key_line,
    parse_keys,
    ring_from_settings,
)
from duecourse.settings import Settings
from duecourse.temporal.converter import sealed_data_converter

KEY_SETTINGS = ("DUECOURSE_PAYLOAD_KEYS", "DUECOURSE_PAYLOAD_KEY_FILE")


def give_session_keys() -> None:
    """A fresh key for this test session, unless the environment configures keys."""
    if not any(os.environ.get(name) for name in KEY_SETTINGS):
        os.environ["DUECOURSE_PAYLOAD_KEYS"] = new_key_line()


def session_ring() -> KeyRing:
    return ring_from_settings(Settings())


def sealed() -> DataConverter:
    """The converter of every test client and worker: the session's keys."""
    return sealed_data_converter(session_ring())


def fresh_ring(*lines: str) -> KeyRing:
    """A ring of the given key lines (default: one new key), oldest first."""
    return parse_keys("\n".join(lines or (new_key_line(),)), "a test's key ring")


def without_key_settings() -> dict[str, str]:
    """This process's environment with no payload key configured (for subprocesses)."""
    return {k: v for k, v in os.environ.items() if k not in KEY_SETTINGS}


def rotated(ring: KeyRing) -> KeyRing:
    """`ring` with a new newest key appended, as `duecourse payload-keys new` rotates."""
    lines = [f"{kid}:{base64.b64encode(material).decode()}" for kid, material in ring.keys]
    return fresh_ring(*lines, new_key_line())


NOT_CODEC_ENCODED = {"temporal.api.common.v1.SearchAttributes",  # visible by design
                     "temporal.api.common.v1.Header"}  # interceptors' context, not data


def patch_marker(event: HistoryEvent) -> bool:
    """A `workflow.patched` marker: the SDK's core writes its payload (the patch id) itself,
    outside the data converter, so no codec ever seals it - and it holds no data."""
    return event.HasField("marker_recorded_event_attributes") and \
        event.marker_recorded_event_attributes.marker_name == "core_patch"


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every payload a codec encodes inside `message` (search attributes and headers are
    not encoded by codecs, and are checked for PII by other means)."""
    for field, value in message.ListFields():
        kind = field.message_type
        if kind is None or kind.full_name in NOT_CODEC_ENCODED:
            continue
        if kind.GetOptions().map_entry:
            items = list(value.values()) if kind.fields_by_name["value"].message_type else []
        elif isinstance(value, Message):
            items = [value]
        else:  # a repeated field
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                yield item
            else:
                yield from payloads_in(item)


def open_payloads(message: Message, codec: EncryptionCodec) -> None:
    """Open every sealed payload inside `message` in place (a history to save as plain
    JSON fixtures, the way tests/histories keeps them)."""
    for payload in payloads_in(message):
        payload.CopyFrom(codec.open(payload))


def session_key_env() -> dict[str, str]:
    """The session's key settings, for a subprocess whose environment starts clean."""
    return {k: os.environ[k] for k in KEY_SETTINGS if os.environ.get(k)}
