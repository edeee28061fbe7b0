"""The Received-SPF trace header field (RFC 7208 §9.1).

Everything in it except the result word comes from the sender or from DNS, so
every value is reduced to printable ASCII and quoted where it is not a
dot-atom (§9.1: "MUST make sure that the Received-SPF header field does not
contain invalid characters, is not excessively long ... and does not contain
malicious data").
"""

from __future__ import annotations

import re

from .result import Result, SpfResult

_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
MAX_VALUE = 200
"""Longest value kept (a record term or problem text can be long); the rest is cut."""
LINE = 78
"""RFC 5322 §2.1.1: lines SHOULD be no longer than 78 characters."""


def _printable(text: str) -> str:
    """Printable ASCII only; anything else (controls, CR/LF, non-ASCII) becomes "?"."""
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return text[:MAX_VALUE]


def _value(text: str) -> str:
    text = _printable(text)
    if _DOT_ATOM.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    text = _printable(text)
    return "(" + re.sub(r"([()\\])", r"\\\1", text) + ")"


def _comment_text(result: SpfResult) -> str:
    who = result.sender if result.identity == "mailfrom" else result.helo
    ip = result.ip
    receiver = result.receiver
    words = {
        Result.PASS: f"domain of {who} designates {ip} as permitted sender",
        Result.FAIL: f"domain of {who} does not designate {ip} as permitted sender",
        Result.SOFTFAIL: f"domain of transitioning {who} does not designate {ip} "
        "as permitted sender",
        Result.NEUTRAL: f"{ip} is neither permitted nor denied by domain of {who}",
        Result.NONE: f"domain of {who} does not designate permitted sender hosts",
        Result.TEMPERROR: f"temporary error in processing domain of {result.domain}",
        Result.PERMERROR: f"permanent error in processing domain of {result.domain}",
    }[result.result]
    return f"{receiver}: {words}"


def received_spf(result: SpfResult, *, fold: bool = True) -> str:
    """``Received-SPF: <result> (<comment>) key=value; ...`` without the final CRLF.

    With ``fold`` the field is folded with CRLF + space before tokens so that no
    line exceeds 78 characters where a break is possible.
    """
    pairs: list[tuple[str, str]] = [("client-ip", result.ip)]
    if result.identity == "mailfrom":
        pairs.append(("envelope-from", result.sender))
    pairs.append(("helo", result.helo))
    pairs.append(("receiver", result.receiver))
    if result.result in (Result.PASS, Result.FAIL, Result.SOFTFAIL, Result.NEUTRAL):
        # §9.1: "mechanism": the one that matched, or "default" when none did.
        pairs.append(("mechanism", result.mechanism or "default"))
    if result.problem and result.result in (Result.PERMERROR, Result.TEMPERROR):
        pairs.append(("problem", result.problem))
    pairs.append(("identity", result.identity))
    tokens = [f"{result.result}", _comment(_comment_text(result))]
    tokens += [f"{key}={_value(value)};" for key, value in pairs]
    tokens[-1] = tokens[-1].rstrip(";")
    if not fold:
        return "Received-SPF: " + " ".join(tokens)
    lines: list[str] = []
    line = "Received-SPF:"
    for token in " ".join(tokens).split(" "):
        if len(line) + 1 + len(token) > LINE and line.strip():
            lines.append(line)
            line = " " + token
        else:
            line = f"{line} {token}"
    lines.append(line)
    return "\r\n".join(lines)
