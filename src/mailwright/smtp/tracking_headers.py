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
from dataclasses import dataclass, field
from typing import Any

from .. import message as rfc5322

TAGS_FIELD = "x-mailwright-tags"
METADATA_FIELD = "x-mailwright-metadata"
MAX_TAGS = 50
MAX_TAG = 100
MAX_METADATA = 10_000


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
    header, body = rfc5322.split_header(message)
    if b"x-mailwright-" not in header.lower():
        return TrackingFields(message=message)
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    kept: list[bytes] = []
    for item in rfc5322.fields(message):
        if item.name == TAGS_FIELD:
            for tag in item.value.split(","):
                tag = tag.strip()
                if len(tag) > MAX_TAG:
                    raise TrackingHeaderError(f"X-Mailwright-Tags: a tag over {MAX_TAG} characters")
                if tag:
                    tags.append(tag)
        elif item.name == METADATA_FIELD:
            if len(item.value) > MAX_METADATA:
                raise TrackingHeaderError(f"X-Mailwright-Metadata over {MAX_METADATA} octets")
            try:
                parsed = json.loads(item.value)
            except ValueError:
                raise TrackingHeaderError("X-Mailwright-Metadata is not valid JSON") from None
            if not isinstance(parsed, dict):
                raise TrackingHeaderError("X-Mailwright-Metadata is not a JSON object")
            metadata.update(parsed)
        else:
            kept.append(item.raw)
    if len(tags) > MAX_TAGS:
        raise TrackingHeaderError(f"X-Mailwright-Tags: more than {MAX_TAGS} tags")
    stripped = b"".join(kept) + b"\r\n" + body
    return TrackingFields(tuple(dict.fromkeys(tags)), metadata, stripped)
