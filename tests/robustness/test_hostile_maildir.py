"""Local delivery paths come from untrusted local parts: they must stay inside the
Maildir root, two plain components deep, never a Maildir++ folder or a '..', and
short enough for a file name (NAME_MAX 255)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from robust_support import mixed_text, robust

from mailwright.maildir import mailbox_path

ROOT = Path("/srv/mail")


@robust(400)
@given(
    # What the SMTP parser can accept: at most 64 octets (RFC 5321 §4.5.3.1.1).
    mixed_text(["..", ".", "/", "\\", "%", "a", "@", "example.com", "\x00", "Junk", "İ"]).filter(
        lambda t: len(t.encode()) <= 64
    ),
    st.sampled_from(["example.com", "EXAMPLE.COM", "", "..", "b\u00fccher.example"]),
)
def test_mailbox_path_stays_inside_the_root(local: str, domain: str) -> None:
    path = mailbox_path(ROOT, f"{local}@{domain}")
    relative = path.relative_to(ROOT)
    assert len(relative.parts) == 2
    for part in relative.parts:
        assert part not in ("", ".", "..") and not part.startswith(".")
        assert "/" not in part and "\x00" not in part
        assert len(part.encode()) <= 255
