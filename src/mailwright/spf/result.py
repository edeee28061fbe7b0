"""What an SPF check produces: one of seven results plus everything needed to explain it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Result(enum.StrEnum):
    """RFC 7208 §2.6: the seven results of check_host()."""

    NONE = "none"
    NEUTRAL = "neutral"
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One thing the evaluation did, for ``spf check`` and for debugging a policy."""

    depth: int
    """0 for the checked domain, +1 per include/redirect."""
    domain: str
    message: str


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The outcome of one check_host() evaluation.

    ``mechanism`` is the term that decided the result, as written in the record
    that holds it (``mechanism_domain``); None when no mechanism matched (the
    default result, a redirect-less record, none, or an error). ``problem``
    explains none/temperror/permerror; for a syntax error ``problem_term`` and
    ``problem_offset`` locate the bad term in its record.
    """

    result: Result
    ip: str
    domain: str
    sender: str
    helo: str
    identity: str
    """"mailfrom" or "helo" (RFC 7208 §9.1 ``identity``)."""
    mechanism: str | None = None
    mechanism_domain: str | None = None
    explanation: str | None = None
    """For fail only: the publisher's exp= text, or the receiver's default (§6.2)."""
    explanation_source: str | None = None
    """"exp" when the text came from the publisher's exp= record, "default" otherwise."""
    problem: str | None = None
    problem_domain: str | None = None
    problem_term: str | None = None
    problem_offset: int | None = None
    record: str | None = None
    """The SPF record of ``domain`` as published, when one was selected."""
    lookups: int = 0
    """DNS-querying terms evaluated (include, a, mx, ptr, exists, redirect): at most 10."""
    void_lookups: int = 0
    """Terms whose lookup found no name or no data: at most 2."""
    receiver: str = "unknown"
    trace: tuple[TraceStep, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is Result.PASS

    def smtp_rejection(self) -> tuple[int, str, tuple[str, ...]] | None:
        """The reply for a receiver that rejects on this result: (code, enhanced status,
        text lines), or None for results that SHOULD NOT be rejected on alone.

        RFC 7208 §8.4/§8.6/§8.7 give 550 for fail and permerror, 451 for temperror;
        the enhanced codes are RFC 7372 §3.2's X.7.23 "SPF validation failed" and
        X.7.24 "SPF validation error". The publisher's explanation is marked as theirs
        (§8.4: "make it clear that the text is provided by the sender's domain").
        """
        identity = "MAIL FROM" if self.identity == "mailfrom" else "HELO"
        if self.result is Result.FAIL:
            lines = [f"SPF {identity} check failed: {self.ip} may not send for {self.domain}"]
            if self.explanation:
                source = self.mechanism_domain or self.domain
                if self.explanation_source == "exp":
                    lines.append(f"The domain {source} explains: {self.explanation}")
                else:
                    lines.append(self.explanation)
            return 550, "5.7.23", tuple(_reply_text(line) for line in lines)
        if self.result is Result.PERMERROR:
            text = f"SPF {identity} check: the SPF record of {self.problem_domain or self.domain}"
            return 550, "5.7.24", (_reply_text(f"{text} is invalid ({self.problem})"),)
        if self.result is Result.TEMPERROR:
            text = f"SPF {identity} check: DNS lookup failed for {self.domain}, try again later"
            return 451, "4.7.24", (_reply_text(text),)
        return None

    def to_json(self) -> dict[str, Any]:
        """The stable ``--json`` schema of ``mailwright spf check`` (documented in README.md)."""
        return {
            "result": str(self.result),
            "identity": self.identity,
            "ip": self.ip,
            "domain": self.domain,
            "sender": self.sender,
            "helo": self.helo,
            "mechanism": self.mechanism,
            "mechanism_domain": self.mechanism_domain,
            "explanation": self.explanation,
            "explanation_source": self.explanation_source,
            "problem": self.problem,
            "problem_domain": self.problem_domain,
            "problem_term": self.problem_term,
            "problem_offset": self.problem_offset,
            "record": self.record,
            "dns_lookups": self.lookups,
            "void_lookups": self.void_lookups,
            "trace": [
                {"depth": s.depth, "domain": s.domain, "message": s.message} for s in self.trace
            ],
        }


def _reply_text(text: str) -> str:
    """Printable ASCII, one line, short enough for an SMTP reply line (RFC 5321 §4.5.3.1.5)."""
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return text[:400]
