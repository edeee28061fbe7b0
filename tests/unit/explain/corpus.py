"""Reading the corpus files under tests/data/explain: each failure line is preceded by
``# expect: CAUSE [list=NAME] [check=ID]``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "explain"
CORPUS_FILES = ("postfix-classic.log", "postfix-rfc3339.log", "mailwright.log")


@dataclass(frozen=True)
class Case:
    file: str
    lineno: int
    line: str
    cause: str
    listname: str | None
    check: str | None

    def __str__(self) -> str:
        return f"{self.file}:{self.lineno}"


def cases(name: str) -> list[Case]:
    result: list[Case] = []
    expect: dict[str, str] | None = None
    for lineno, line in enumerate((DATA / name).read_text().splitlines(), 1):
        if line.startswith("# expect: "):
            words = line[len("# expect: ") :].split(" ")
            expect = {"cause": words[0]}
            rest = " ".join(words[1:])
            # list=NAME may contain spaces ("Microsoft (S3140)"): split on " check="
            if "check=" in rest:
                rest, _, check = rest.partition("check=")
                expect["check"] = check.strip()
            if rest.strip().startswith("list="):
                expect["list"] = rest.strip()[len("list=") :]
            continue
        if expect is not None and not line.startswith("#"):
            result.append(
                Case(name, lineno, line, expect["cause"], expect.get("list"), expect.get("check"))
            )
            expect = None
    return result
