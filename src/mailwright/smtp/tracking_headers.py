"""``X-Mailwright-Tags`` and ``X-Mailwright-Metadata``: what the application attaches to a
message for its events, read and removed at submission (before DKIM signing, so they
never leave the server).

``X-Mailwright-Tags: welcome, onboarding`` — comma-separated, each at most
:data:`MAX_TAG` characters, at most :data:`MAX_TAGS` of them.
``X-Mailwright-Metadata: {"user_id": 42}`` — one JSON object, at most
:data:`MAX_METADATA` octets. Several fields of one kind are merged (tags appended,
objects updated in order). Names match django-anymail's ``tags`` and ``metadata``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TAGS_FIELD = "x-mailwright-tags"
METADATA_FIELD = "x-mailwright-metadata"
MAX_TAGS = 50
MAX_TAG = 100
MAX_METADATA = 10_000

_FIELD = re.compile(
    rb"^(x-mailwright-(?:tags|metadata))[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)\r\n",
    re.MULTILINE | re.IGNORECASE,
)


class TrackingHeaderError(ValueError):
    """A tracking field the application wrote is unusable (the reply names it)."""


@dataclass(frozen=True)
class TrackingFields:
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    message: bytes = b""
    """The message without the tracking fields."""


def extract(message: bytes) -> TrackingFields:
    """Read and remove the tracking fields; :class:`TrackingHeaderError` if one is bad."""
    end = message.find(b"\r\n\r\n")
    head = message[: end + 2] if end >= 0 else message
    if b"x-mailwright-" not in head.lower():
        return TrackingFields(message=message)
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    for m in _FIELD.finditer(head):
        value = re.sub(rb"\r\n(?=[ \t])", b"", m.group(2)).decode("utf-8", "replace").strip()
        if m.group(1).lower() == TAGS_FIELD.encode():
            for tag in value.split(","):
                tag = tag.strip()
                if not tag:
                    continue
                if len(tag) > MAX_TAG:
                    raise TrackingHeaderError(f"X-Mailwright-Tags: a tag over {MAX_TAG} characters")
                tags.append(tag)
        else:
            if len(value) > MAX_METADATA:
                raise TrackingHeaderError(f"X-Mailwright-Metadata over {MAX_METADATA} octets")
            try:
                parsed = json.loads(value)
            except ValueError:
                raise TrackingHeaderError("X-Mailwright-Metadata is not valid JSON") from None
            if not isinstance(parsed, dict):
                raise TrackingHeaderError("X-Mailwright-Metadata is not a JSON object")
            metadata.update(parsed)
    if len(tags) > MAX_TAGS:
        raise TrackingHeaderError(f"X-Mailwright-Tags: more than {MAX_TAGS} tags")
    stripped = _FIELD.sub(b"", head) + message[len(head) :]
    return TrackingFields(tuple(dict.fromkeys(tags)), metadata, stripped)
