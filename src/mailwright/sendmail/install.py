"""Making ``mailwright-sendmail`` the system's ``sendmail``, ``mailq`` and ``newaliases``,
the Debian way, and undoing it.

MTAs on Debian do not use ``update-alternatives``: each package ships
``/usr/sbin/sendmail`` itself and they conflict with each other. A package's file is
never overwritten: when one owns it (``dpkg -S``), ``dpkg-divert --local --rename``
moves it aside to ``PATH.mailwright-diverted`` and records that, so package upgrades
write there instead of over our link; ``--remove`` later puts it back. A path no
package owns gets a symbolic link (an existing file there is an error, not replaced).

The plan is computed first (:func:`plan_install`, :func:`plan_uninstall`: commands, pure
given what is on disk) so that ``--dry-run`` shows exactly what would run and the undo
commands can be printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

TARGETS = (Path("/usr/sbin/sendmail"), Path("/usr/bin/mailq"), Path("/usr/bin/newaliases"))
DIVERT_SUFFIX = ".mailwright-diverted"


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]

    @property
    def shell(self) -> str:
        return " ".join(self.argv)


def program_path() -> Path:
    """The installed ``mailwright-sendmail`` script (next to this Python)."""
    beside = Path(sys.executable).parent / "mailwright-sendmail"
    if beside.exists():
        return beside
    found = shutil.which("mailwright-sendmail")
    if found is None:
        raise UserError(
            "mailwright-sendmail is not installed", "install mailwright with its scripts"
        )
    return Path(found)


def package_owner(path: Path) -> str | None:
    """The Debian package that ships ``path`` (None: none, or no dpkg here)."""
    if shutil.which("dpkg") is None:
        return None
    proc = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    line = proc.stdout.splitlines()[0] if proc.stdout else ""
    if line.startswith("diversion by"):
        return None
    return line.split(":", 1)[0] or None


def diverted(path: Path) -> bool:
    if shutil.which("dpkg-divert") is None:
        return False
    proc = subprocess.run(
        ["dpkg-divert", "--listpackage", str(path)], capture_output=True, text=True
    )
    return proc.stdout.strip() == "LOCAL"


def plan_install(
    program: Path,
    targets: Sequence[Path] = TARGETS,
    owner: Callable[[Path], str | None] = package_owner,
    is_diverted: Callable[[Path], bool] = diverted,
) -> list[Step]:
    steps: list[Step] = []
    for target in targets:
        if target.is_symlink() and Path(os.readlink(target)) == program:
            continue  # already ours
        if not is_diverted(target) and owner(target) is not None:
            steps.append(
                Step(
                    (
                        "dpkg-divert",
                        "--local",
                        "--rename",
                        "--divert",
                        f"{target}{DIVERT_SUFFIX}",
                        "--add",
                        str(target),
                    )
                )
            )
        elif (target.exists() or target.is_symlink()) and not is_diverted(target):
            raise UserError(
                f"{target} exists and belongs to no package",
                f"move it away yourself (e.g. mv {target} {target}.orig), then run this again",
            )
        steps.append(Step(("ln", "-sfn", str(program), str(target))))
    return steps


def plan_uninstall(
    program: Path,
    targets: Sequence[Path] = TARGETS,
    is_diverted: Callable[[Path], bool] = diverted,
) -> list[Step]:
    steps: list[Step] = []
    for target in targets:
        if target.is_symlink() and Path(os.readlink(target)) == program:
            steps.append(Step(("rm", str(target))))
        if is_diverted(target):
            steps.append(Step(("dpkg-divert", "--local", "--rename", "--remove", str(target))))
    return steps


def apply(steps: Sequence[Step], echo: Callable[[str], None] = print) -> None:
    for step in steps:
        echo(f"+ {step.shell}")
        proc = subprocess.run(step.argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(
                f"{step.shell} failed: {proc.stderr.strip() or proc.returncode}",
                "run as root; fix the cause and run this again (steps done so far stay)",
            )
