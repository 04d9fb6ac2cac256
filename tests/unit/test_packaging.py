"""What the project ships: a distribution name of its own, a LICENSE, and a lock file that pins
every dependency the package declares, with hashes, for the image to install from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")


def locked() -> dict[str, tuple[Version, int]]:
    """Each package of requirements.lock: its pinned version and how many hashes it carries."""
    pins: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        found = PINNED.match(line)
        if found:
            current = canonicalize_name(found.group(1))
            pins[current] = (Version(found.group(2)), 0)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif not line.startswith(" "):
            current = None
    return pins


def test_the_distribution_has_a_name_of_its_own_and_the_command_stays_reconciler() -> None:
    # `reconciler` on the package index is an unrelated project
    assert PYPROJECT["name"] == "reconciler-gitops"
    assert PYPROJECT["scripts"] == {"reconciler": "reconciler.cli:main"}


def test_the_license_file_is_the_apache_license_the_metadata_names() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PYPROJECT["license"] == "Apache-2.0"
    assert "Apache License" in text[:200] and "Version 2.0, January 2004" in text[:200]
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_lock_pins_every_declared_dependency_with_hashes_in_its_range() -> None:
    pins = locked()
    assert pins, "requirements.lock holds no pinned package"
    assert all(hashes >= 1 for _version, hashes in pins.values()), "every pin has a hash"
    for spec in PYPROJECT["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared but not locked"
        version, _hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (spec, version)
