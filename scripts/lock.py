#!/usr/bin/env python3
"""Regenerate requirements/lock.txt: every distribution `make install` installs, pinned with sha256.

Usage: python3 scripts/lock.py [--upgrade] [--python PYTHON]

The inputs are pyproject.toml (core dependencies and every extra, as compatible ranges),
requirements/requirements.in and requirements/nodeps.in (resolved without dependencies). pip
resolves them in a scratch venv (`pip install --dry-run --ignore-installed --report`) and the
report's archive hashes become the lock: one exact version of every distribution. Pins already in
the lock are kept as constraints (a direct requirement's pin only while its range still allows it),
so a re-run gives the same file until an input changes; --upgrade drops them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQ_DIR = ROOT / "requirements"
LOCK = REQ_DIR / "lock.txt"
NOISE = "is ignored: it is neither a file nor a directory"


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines(path: Path) -> list[str]:
    """Requirement lines of a .in file, comments and blanks dropped."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def pyproject_requirements() -> list[str]:
    """Core dependencies plus every optional extra of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return reqs


def requirement_name(req: str) -> str:
    """Project name of a requirement string such as 'ruamel.yaml==0.19.1'."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    if not match:
        raise SystemExit(f"lock: cannot read a project name from {req!r}")
    return canonical(match.group(1))


def allows(requirement: str, pin: str) -> bool:
    """Whether `pin` ('name==version') satisfies the version range of `requirement`."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(requirement).specifier.contains(pin.split("==", 1)[1], prereleases=True)


def previous_pins() -> dict[str, str]:
    """name -> 'name==version' from the current lock, if there is one."""
    pins = {}
    if LOCK.exists():
        for line in LOCK.read_text().splitlines():
            match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
            if match:
                pins[canonical(match.group(1))] = f"{match.group(1)}=={match.group(2)}"
    return pins


def resolve(pip: Path, reqs: list[str], constraints: list[str], workdir: Path, tag: str, no_deps: bool) -> list[dict]:
    """Run pip's resolver without installing anything; return the report's install list."""
    req_file = workdir / f"{tag}.in"
    req_file.write_text("\n".join(reqs) + "\n")
    report = workdir / f"{tag}.json"
    cmd = [
        str(pip),
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--report",
        str(report),
        "-r",
        str(req_file),
    ]
    if constraints:
        con_file = workdir / f"{tag}.constraints"
        con_file.write_text("\n".join(constraints) + "\n")
        cmd += ["-c", str(con_file)]
    if no_deps:
        cmd.append("--no-deps")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write("".join(line + "\n" for line in proc.stderr.splitlines() if NOISE not in line))
    if proc.returncode != 0:
        hint = " (a kept pin may conflict: try --upgrade)" if constraints else ""
        raise SystemExit(f"lock: pip could not resolve {tag}{hint}")
    return json.loads(report.read_text())["install"]


def lock_line(item: dict) -> tuple[str, str]:
    """('name', 'name==version --hash=sha256:...') for one report entry."""
    meta = item["metadata"]
    archive = item.get("download_info", {}).get("archive_info")
    if archive is None:
        raise SystemExit(f"lock: {meta['name']} does not come from an archive; cannot hash it")
    digest = archive.get("hashes", {}).get("sha256")
    if digest is None and archive.get("hash", "").startswith("sha256="):
        digest = archive["hash"].split("=", 1)[1]
    if digest is None:
        raise SystemExit(f"lock: no sha256 for {meta['name']} {meta['version']}")
    name = canonical(meta["name"])
    return name, f"{name}=={meta['version']} --hash=sha256:{digest}"


def main() -> int:
    """Resolve the inputs and write requirements/lock.txt."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="ignore the pins in the old lock")
    parser.add_argument("--python", default=sys.executable, help="interpreter to lock for")
    args = parser.parse_args()

    main_reqs = pyproject_requirements() + requirement_lines(REQ_DIR / "requirements.in")
    nodeps_reqs = requirement_lines(REQ_DIR / "nodeps.in")
    direct = {requirement_name(r): r for r in main_reqs + nodeps_reqs}
    kept = {} if args.upgrade else previous_pins()
    constraints = [pin for name, pin in sorted(kept.items()) if name not in direct or allows(direct[name], pin)]

    with tempfile.TemporaryDirectory(prefix="llmeval-lock-") as tmp:
        workdir = Path(tmp)
        subprocess.run([args.python, "-m", "venv", str(workdir / "venv")], check=True)
        pip = workdir / "venv" / "bin" / "pip"
        env_info = subprocess.run(
            [
                str(workdir / "venv" / "bin" / "python"),
                "-c",
                "import platform, sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}', "
                "platform.machine(), platform.system().lower())",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        full = dict(lock_line(i) for i in resolve(pip, main_reqs, constraints, workdir, "main", no_deps=False))
        nodeps = dict(lock_line(i) for i in resolve(pip, nodeps_reqs, [], workdir, "nodeps", no_deps=True))

    clash = set(full) & set(nodeps)
    if clash:
        raise SystemExit(f"lock: {sorted(clash)} appear in both the main and the no-deps set")
    header = [
        "# Generated by scripts/lock.py from pyproject.toml, requirements/requirements.in and",
        "# requirements/nodeps.in. Do not edit; run `make lock`.",
        "# Install with: pip install --no-deps --require-hashes -r requirements/lock.txt",
        f"# python-version: {env_info[0]}",
        f"# platform: {env_info[2]}-{env_info[1]}",
    ]
    body = [full[name] for name in sorted(full)]
    body += ["", "# Installed without their declared dependencies (see requirements/nodeps.in)."]
    body += [nodeps[name] for name in sorted(nodeps)]
    LOCK.write_text("\n".join(header + [""] + body) + "\n")
    print(f"lock: wrote {LOCK.relative_to(ROOT)} ({len(full) + len(nodeps)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
