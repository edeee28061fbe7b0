"""The OpenAPI 3.1 document of ``/v1`` (served at ``/v1/openapi.json``; the tests check
real responses against its schemas)."""

from __future__ import annotations

from typing import Any

from ..queue.events import EVENT_TYPES

RECIPIENT_STATUSES = [
    *("queued", "held", "deferred", "delivered", "bounced", "expired", "rejected"),
    *("suppressed", "complained", "autoreplied", "warning", "inbound"),
]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
}
_ADDRESS = {
    "oneOf": [
        {"type": "string", "description": "a@example.com or Name <a@example.com>"},
        {
            "type": "object",
            "required": ["email"],
            "properties": {"email": {"type": "string"}, "name": {"type": "string"}},
        },
    ]
}
_ADDRESSES = {"oneOf": [_ADDRESS, {"type": "array", "items": _ADDRESS}]}
_NULLABLE_STRING = {"type": ["string", "null"]}
_EVENT = {
    "type": "object",
    "required": ["event_id", "event_type", "timestamp", "recipient", "queue_id", "tags"],
    "properties": {
        "schema": {"type": "integer"},
        "seq": {"type": "integer"},
        "event_id": {"type": "string"},
        "event_type": {"enum": list(EVENT_TYPES)},
        "timestamp": {"type": "string", "format": "date-time"},
        "recipient": _NULLABLE_STRING,
        "message_id": _NULLABLE_STRING,
        "queue_id": _NULLABLE_STRING,
        "sender": _NULLABLE_STRING,
        "reject_reason": _NULLABLE_STRING,
        "mta_response": _NULLABLE_STRING,
        "bounce_type": {"enum": ["hard", "soft", None]},
        "bounce_source": {"enum": ["sync", "async", None]},
        "cause": _NULLABLE_STRING,
        "tags": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "object"},
        "details": {"type": "object"},
    },
}
_SUPPRESSION = {
    "type": "object",
    "required": ["address", "reason", "created_at"],
    "properties": {
        "address": {"type": "string"},
        "reason": {"enum": ["hard-bounce", "soft-bounces", "complaint", "manual"]},
        "detail": {"type": "string"},
        "source_event": _NULLABLE_STRING,
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": _NULLABLE_STRING,
    },
}
_SEND = {
    "type": "object",
    "properties": {
        "from": _ADDRESS,
        "to": _ADDRESSES,
        "cc": _ADDRESSES,
        "bcc": _ADDRESSES,
        "reply_to": _ADDRESSES,
        "subject": {"type": "string"},
        "text": {"type": "string"},
        "html": {"type": "string"},
        "attachments": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["filename", "content"],
                "properties": {
                    "filename": {"type": "string"},
                    "content_type": {"type": "string"},
                    "content": {"type": "string", "contentEncoding": "base64"},
                },
            },
        },
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "object"},
        "send_at": {
            "oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
            "description": "no delivery before this time (Unix time or RFC 3339)",
        },
        "raw": {"type": "string", "contentEncoding": "base64", "description": "RFC 5322 message"},
        "envelope": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {
                "from": {"type": "string"},
                "to": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
    "additionalProperties": False,
}
_SENT = {
    "type": "object",
    "required": ["queue_id", "message_id", "recipients"],
    "properties": {
        "queue_id": {"type": "string"},
        "message_id": _NULLABLE_STRING,
        "recipients": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["address", "status"],
                "properties": {
                    "address": {"type": "string"},
                    "status": {"enum": ["queued", "suppressed"]},
                },
            },
        },
    },
}
_MESSAGE = {
    "type": "object",
    "required": ["queue_id", "in_queue", "held", "recipients", "events"],
    "properties": {
        "queue_id": {"type": "string"},
        "in_queue": {"type": "boolean"},
        "held": {"type": "boolean"},
        "sender": _NULLABLE_STRING,
        "message_id": _NULLABLE_STRING,
        "created_at": {"type": ["number", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "recipients": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["address", "status"],
                "properties": {
                    "address": {"type": "string"},
                    "status": {"enum": RECIPIENT_STATUSES},
                    "attempts": {"type": "integer"},
                    "last_reply": _NULLABLE_STRING,
                    "next_attempt": {"type": ["number", "null"]},
                },
            },
        },
        "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
    },
}


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", **_json("Error")} for c in (401, 403, *codes)}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "mailwright API", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "Event": _EVENT,
            "Suppression": _SUPPRESSION,
            "SendRequest": _SEND,
            "Sent": _SENT,
            "Message": _MESSAGE,
            "Events": {
                "type": "object",
                "required": ["events", "next_cursor", "more"],
                "properties": {
                    "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                    "next_cursor": {"type": "integer"},
                    "more": {"type": "boolean"},
                },
            },
            "Suppressions": {
                "type": "object",
                "required": ["suppressions"],
                "properties": {
                    "suppressions": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Suppression"},
                    }
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/messages": {
            "post": {
                "summary": "Queue a message (scope send)",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 255},
                        "description": "same key within 24 h: the first answer, nothing queued",
                    }
                ],
                "requestBody": {"required": True, **_json("SendRequest")},
                "responses": {
                    "202": {"description": "queued (on stable storage)", **_json("Sent")},
                    "400": {"description": "a bad field, named", **_json("Error")},
                    "409": {"description": "key reused with another body", **_json("Error")},
                    "413": {"description": "too large", **_json("Error")},
                    "422": {"description": "refused by intake policy", **_json("Error")},
                    **_errors(),
                },
            }
        },
        "/v1/messages/{queue_id}": {
            "get": {
                "summary": "A message's recipients and events (scope read)",
                "parameters": [
                    {
                        "name": "queue_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "the message", **_json("Message")},
                    "404": {"description": "unknown", **_json("Error")},
                    **_errors(400),
                },
            }
        },
        "/v1/events": {
            "get": {
                "summary": "The event log, oldest first (scope read)",
                "parameters": [
                    {"name": n, "in": "query", "schema": s}
                    for n, s in (
                        ("cursor", {"type": "integer"}),
                        ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                        ("type", {"type": "string"}),
                        ("recipient", {"type": "string"}),
                        ("tag", {"type": "string"}),
                        ("since", {"type": "number"}),
                        ("until", {"type": "number"}),
                    )
                ],
                "responses": {"200": {"description": "a page", **_json("Events")}, **_errors(400)},
            }
        },
        "/v1/suppressions": {
            "get": {
                "summary": "The suppression list (scope suppressions)",
                "parameters": [{"name": "address", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "list", **_json("Suppressions")}, **_errors()},
            },
            "post": {
                "summary": "Suppress an address (scope suppressions)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["address"],
                                "properties": {
                                    "address": {"type": "string"},
                                    "detail": {"type": "string"},
                                    "expires_at": {"type": "number"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": {"description": "added", **_json("Suppression")},
                    **_errors(400),
                },
            },
        },
        "/v1/suppressions/{address}": {
            "delete": {
                "summary": "Remove a suppression (scope suppressions)",
                "parameters": [
                    {
                        "name": "address",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "204": {"description": "removed"},
                    "404": {"description": "not suppressed", **_json("Error")},
                    **_errors(400),
                },
            }
        },
    },
}
