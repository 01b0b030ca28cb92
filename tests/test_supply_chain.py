"""Supply-chain checks on the running environment and on requirements/lock.txt.

The environment `make install` builds must hold exactly the locked distributions, no startup
hooks beyond the known ones, and a litellm release outside the compromised ones.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import site
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
PYPROJECT = ROOT / "pyproject.toml"

# .pth files run code at every interpreter start (the 2026 litellm compromise shipped one).
ALLOWED_PTH = (
    "distutils-precedence.pth",  # setuptools' own shim
    "__editable__.llmeval-*.pth",  # setuptools editable install of this project
    "_llmeval.pth",  # the same, from hatchling or older tooling
)
# Compromised litellm releases: 1.82.7 and 1.82.8 stole credentials; 1.107.x is reported bad.
COMPROMISED_LITELLM = ("1.82.7", "1.82.8", "1.107.*")
# Not in the lock on purpose: the installer the venv is seeded with, and the project itself.
UNLOCKED = {"pip", "llmeval"}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)")
LOCK_LINE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*)==(?P<version>\S+)(?: --hash=sha256:[0-9a-f]{64})+$")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries() -> list[str]:
    """The requirement lines of the lock, comments and blank lines dropped."""
    return [
        line.strip() for line in LOCK.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def lock_pins() -> dict[str, Version]:
    """name -> pinned version for every line of the lock."""
    pins = {}
    for line in lock_entries():
        match = PIN.match(line)
        assert match, f"lock line is not an exact name==version pin: {line}"
        pins[canonical(match["name"])] = Version(match["version"])
    return pins


def site_package_dirs() -> set[Path]:
    """The site-packages directories of the running interpreter."""
    dirs = {Path(p) for p in site.getsitepackages()}
    dirs |= {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
    return {d for d in dirs if d.is_dir()}


def test_site_packages_hold_only_known_pth_files() -> None:
    found = [pth for d in site_package_dirs() for pth in d.glob("*.pth")]
    unknown = [str(pth) for pth in found if not any(fnmatch.fnmatch(pth.name, pattern) for pattern in ALLOWED_PTH)]
    assert unknown == [], f"unexpected .pth startup hooks: {unknown}"


def test_every_installed_distribution_matches_its_lock_pin() -> None:
    pins = lock_pins()
    wrong = []
    # Installed distributions only: Ray puts the copies of psutil and colorama that its (hash-checked)
    # wheel vendors on sys.path once it is imported, and those are not installs.
    for dist in metadata.distributions(path=[str(d) for d in site_package_dirs()]):
        name = canonical(dist.metadata["Name"])
        if name in UNLOCKED:
            continue
        if name not in pins:
            wrong.append(f"{name}=={dist.version} is installed but not in the lock")
        elif Version(dist.version) != pins[name]:
            wrong.append(f"{name}=={dist.version} is installed, the lock pins {pins[name]}")
    assert wrong == [], "\n".join(sorted(set(wrong)))


def test_installed_llmeval_is_this_checkout_version() -> None:
    project = tomllib.loads(PYPROJECT.read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "llmeval.version.__version__"}
    version = re.search(r'__version__ = "([^"]+)"', (ROOT / "llmeval" / "version.py").read_text())
    assert version and metadata.version("llmeval") == version.group(1)


def test_lock_pins_litellm_outside_compromised_releases() -> None:
    litellm = [line for line in lock_entries() if canonical(line.split("==")[0]) == "litellm"]
    assert len(litellm) == 1, f"litellm must be pinned exactly once, found {litellm}"
    version = litellm[0].split("==")[1].split()[0]
    bad = [p for p in COMPROMISED_LITELLM if fnmatch.fnmatch(version, p)]
    assert bad == [], f"lock pins compromised litellm {version}"


def test_every_lock_line_is_pinned_with_a_sha256_hash() -> None:
    entries = lock_entries()
    assert len(entries) > 50, "the lock should cover the full dependency tree"
    unhashed = [line for line in entries if not LOCK_LINE.match(line)]
    assert unhashed == [], f"lines without name==version --hash=sha256:...: {unhashed}"


KNOWN_BREAKS: dict[str, str] = {}
"""Dependencies allowed an upper cap, each with the break that needs it (none today)."""


def declared() -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]


def test_pyproject_declares_compatible_ranges_that_the_lock_satisfies() -> None:
    pins = lock_pins()
    problems = []
    for text in declared():
        req = Requirement(text)
        name = canonical(req.name)
        ops = [s.operator for s in req.specifier]
        if ops.count(">=") != 1:
            problems.append(f"{text}: needs one lower bound (>=) and no exact pin")
        if {"==", "===", "~="} & set(ops) or ("<" in ops or "<=" in ops) and name not in KNOWN_BREAKS:
            problems.append(f"{text}: an exact pin or an upper cap (add it to KNOWN_BREAKS with the break)")
        if name not in pins:
            problems.append(f"{text}: missing from the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{text}: the lock pins {pins[name]}, outside the range")
    assert problems == [], "\n".join(problems)


def test_pyproject_excludes_the_compromised_litellm_releases() -> None:
    [litellm] = [Requirement(t) for t in declared() if canonical(Requirement(t).name) == "litellm"]
    for bad in ("1.82.7", "1.82.8", "1.107.0", "1.107.3"):
        assert not litellm.specifier.contains(bad), f"pyproject allows compromised litellm {bad}"
    assert {"!=1.82.7", "!=1.82.8", "!=1.107.*"} <= {str(s) for s in litellm.specifier}


def test_every_requirement_of_the_lock_script_is_locked() -> None:
    spec = importlib.util.spec_from_file_location("lock_script", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    pins = lock_pins()
    inputs = lock.pyproject_requirements() + lock.requirement_lines(ROOT / "requirements" / "requirements.in")
    inputs += lock.requirement_lines(ROOT / "requirements" / "nodeps.in")
    assert [r for r in inputs if lock.requirement_name(r) not in pins] == []
    # A re-run keeps a direct pin that its range still allows, and moves one it no longer allows.
    assert lock.allows("numpy>=1.26.4", "numpy==2.4.6") and not lock.allows("numpy>=2.5", "numpy==2.4.6")
