"""A Django email backend that sends through mailwright's HTTP API.

Settings::

    EMAIL_BACKEND = "mailwright.django.EmailBackend"
    MAILWRIGHT_API_URL = "https://mail.example.com"   # the http listener
    MAILWRIGHT_API_KEY = "mwk_..."                    # a key with the send scope
    MAILWRIGHT_TIMEOUT = 10                           # seconds (optional)

Each :class:`~django.core.mail.EmailMessage` becomes one ``POST /v1/messages``: from,
to, cc, bcc, reply_to, subject, the body (text, or HTML when ``content_subtype`` is
``"html"``), an ``text/html`` alternative, attachments, extra headers, and the
attributes ``tags`` (list of str), ``metadata`` (dict), ``send_at`` (datetime or Unix
time) and ``idempotency_key`` (str) — the names django-anymail uses where it has them.
After sending, ``message.mailwright`` holds the API's answer (``queue_id``,
``message_id``, per-recipient ``queued``/``suppressed``).

Blocking HTTP (``urllib``), as Django's backends are called synchronously.
"""

from __future__ import annotations

import base64
import datetime
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from email.mime.base import MIMEBase
from typing import TYPE_CHECKING, Any

from django.core.mail.backends.base import BaseEmailBackend

if TYPE_CHECKING:
    from django.core.mail.message import EmailMessage

from .errors import MailwrightError

DEFAULT_TIMEOUT = 10.0
_FIELDS = {"from": "from", "to": "to", "cc": "cc", "reply-to": "reply_to", "subject": "subject"}


class MailwrightApiError(MailwrightError):
    """The API refused the message or could not be reached; ``status`` 0: no answer."""

    def __init__(self, message: str, status: int = 0, answer: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]  # Django has no type hints
    def __init__(
        self,
        fail_silently: bool = False,
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        from django.conf import settings  # here: a LazySettings at module level is touched by

        # anything that inspects the module, before Django is configured
        self.api_url = str(api_url or getattr(settings, "MAILWRIGHT_API_URL", "")).rstrip("/")
        self.api_key = str(api_key or getattr(settings, "MAILWRIGHT_API_KEY", ""))
        self.timeout = timeout or getattr(settings, "MAILWRIGHT_TIMEOUT", DEFAULT_TIMEOUT)
        if not self.api_url or not self.api_key:
            raise MailwrightError(
                "mailwright.django.EmailBackend needs MAILWRIGHT_API_URL and MAILWRIGHT_API_KEY"
            )

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for message in email_messages:
            try:
                if not message.recipients():
                    continue
                message.mailwright = self._post(payload(message), message)
                sent += 1
            except (MailwrightApiError, ValueError, TypeError):
                if not self.fail_silently:
                    raise
        return sent

    def _post(self, body: dict[str, Any], message: EmailMessage) -> Any:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "User-Agent": "mailwright-django",
        }
        key = getattr(message, "idempotency_key", None)
        if key:
            headers["Idempotency-Key"] = str(key)
        request = urllib.request.Request(
            self.api_url + "/v1/messages",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                answer = json.loads(raw)
                text = answer.get("error", raw[:200].decode("utf-8", "replace"))
            except ValueError:
                answer, text = None, raw[:200].decode("utf-8", "replace")
            raise MailwrightApiError(
                f"mailwright API: {exc.code}: {text}", exc.code, answer
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise MailwrightApiError(f"mailwright API unreachable: {exc}") from None


def _attachment(item: Any) -> dict[str, str]:
    if isinstance(item, MIMEBase):
        data = item.get_payload(decode=True)
        return {
            "filename": item.get_filename() or "attachment",
            "content_type": item.get_content_type(),
            "content": base64.b64encode(data if isinstance(data, bytes) else b"").decode(),
        }
    filename, content, mimetype = item
    raw = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    return {
        "filename": filename or "attachment",
        "content_type": mimetype or "application/octet-stream",
        "content": base64.b64encode(raw).decode(),
    }


def payload(message: EmailMessage) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for ``message``."""
    from django.conf import settings

    body: dict[str, Any] = {
        "from": str(message.from_email or settings.DEFAULT_FROM_EMAIL),
        "to": [str(a) for a in message.to],
        "subject": str(message.subject),
    }
    for name in ("cc", "bcc", "reply_to"):
        values = [str(a) for a in getattr(message, name, None) or ()]
        if values:
            body[name] = values
    html_body = message.content_subtype == "html"
    body["html" if html_body else "text"] = str(message.body)
    for content, mimetype in getattr(message, "alternatives", None) or ():
        if mimetype == "text/html" and "html" not in body:
            body["html"] = str(content)
        elif mimetype == "text/plain" and "text" not in body:
            body["text"] = str(content)
        else:
            raise ValueError(f"mailwright: an alternative of type {mimetype} is not supported")
    if message.attachments:
        body["attachments"] = [_attachment(item) for item in message.attachments]
    headers: dict[str, str] = {}
    for name, value in (message.extra_headers or {}).items():
        field = _FIELDS.get(name.lower())
        if field in ("from", "subject"):
            body[field] = str(value)
        elif field is not None:
            body[field] = [v.strip() for v in str(value).split(",")]
        else:
            headers[name] = str(value)
    if headers:
        body["headers"] = headers
    tags = getattr(message, "tags", None)
    if tags:
        body["tags"] = [str(t) for t in tags]
    metadata = getattr(message, "metadata", None)
    if metadata:
        body["metadata"] = dict(metadata)
    send_at = getattr(message, "send_at", None)
    if isinstance(send_at, datetime.datetime):
        if send_at.tzinfo is None:  # Django's naive datetimes are in its TIME_ZONE
            from django.utils import timezone

            send_at = timezone.make_aware(send_at)
        body["send_at"] = send_at.timestamp()
    elif isinstance(send_at, datetime.date):
        raise ValueError("mailwright: send_at needs a datetime, not a date")
    elif send_at is not None:
        body["send_at"] = float(send_at)
    return body
