"""Fails when pyproject.toml and requirements.lock disagree.

Every requirement of the project (its dependencies, every optional extra, the build
backend) must be pinned in the lock, with ``==`` and hashes, at a version the requirement
admits. A dependency added to pyproject.toml and not locked, a bound the locked version no
longer meets, or a lock entry without a hash makes this exit with 1 and say which; refresh
the lock with ``make lock``.

Run with the project's virtual environment (it needs ``packaging``)::

    .venv/bin/python scripts/check_lock.py
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked_pins(lock_text: str) -> dict[str, list[Version]]:
    """Every ``name==version`` of the lock, with its hash lines checked.

    Returns canonical name → versions (one name may be pinned twice, under exclusive
    markers). Raises ``ValueError`` for an entry without a ``--hash``.
    """
    pins: dict[str, list[Version]] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock_text)
    for entry in entries:
        match = _PIN.match(entry)
        if not match:
            continue
        if "--hash=sha256:" not in entry:
            raise ValueError(f"{match.group(1)} is locked without a hash")
        pins.setdefault(canonicalize_name(match.group(1)), []).append(Version(match.group(2)))
    return pins


def project_requirements(pyproject: dict) -> list[Requirement]:
    """The build backend, the dependencies and every optional extra of ``pyproject``."""
    project = pyproject["project"]
    texts = list(pyproject["build-system"]["requires"]) + list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        texts.extend(extra)
    return [Requirement(text) for text in texts]


def disagreements(pyproject: dict, lock_text: str) -> list[str]:
    """What the lock lacks, in sentences; empty when the lock covers the project."""
    problems = []
    try:
        pins = locked_pins(lock_text)
    except ValueError as exc:
        return [str(exc)]
    for requirement in project_requirements(pyproject):
        name = canonicalize_name(requirement.name)
        versions = pins.get(name)
        if not versions:
            problems.append(f"{requirement} is not in requirements.lock")
            continue
        for version in versions:
            if not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"{requirement} does not admit the locked {name}=={version}")
    return problems


def main() -> int:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lock_text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    problems = disagreements(pyproject, lock_text)
    for problem in problems:
        print(f"check_lock: {problem}", file=sys.stderr)
    if problems:
        print(
            "check_lock: pyproject.toml and requirements.lock disagree: run `make lock`",
            file=sys.stderr,
        )
        return 1
    print(
        f"check_lock: requirements.lock covers pyproject.toml "
        f"({len(project_requirements(pyproject))} requirements)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
