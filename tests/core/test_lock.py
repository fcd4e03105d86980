"""The lock files (``make lock``) pin what pyproject.toml asks for, with hashes.

``make install``, CI and the image install from them alone, so a dependency added to
pyproject.toml and not locked would be missing everywhere but on the machine that added
it by hand: this test says so first.
"""

import re
import tomllib
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(line) for line in PROJECT["dependencies"]]
DEV = [Requirement(line) for line in PROJECT["optional-dependencies"]["dev"]]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
STALE = "pyproject.toml changed: run `make lock`"


def read_lock(name: str) -> dict[str, tuple[str, int]]:
    """Package → (version, number of hashes)."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            pins[current] = (match[2], 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


RUNTIME_LOCK = read_lock("requirements.lock")
DEV_LOCK = read_lock("requirements-dev.lock")


def unlocked(requirements: list[Requirement], lock: dict) -> list[str]:
    wrong = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in lock:
            wrong.append(f"{requirement}: not in the lock")
        elif not requirement.specifier.contains(lock[name][0], prereleases=True):
            wrong.append(f"{requirement}: locked at {lock[name][0]}")
        for extra in requirement.extras:
            # What the extra brings (celery[redis] → kombu[redis]) is locked too.
            for line in requires(requirement.name) or []:
                needed = Requirement(line)
                marker = needed.marker
                if marker and "extra" in str(marker) and marker.evaluate({"extra": extra}):
                    if canonicalize_name(needed.name) not in lock:
                        wrong.append(f"{requirement}: {needed.name} ({extra}) not in the lock")
    return wrong


@pytest.mark.parametrize(
    ("requirements", "lock"),
    [(RUNTIME, RUNTIME_LOCK), (RUNTIME + DEV, DEV_LOCK)],
    ids=["requirements.lock", "requirements-dev.lock"],
)
def test_every_dependency_of_pyproject_is_locked_within_its_range(requirements, lock):
    wrong = unlocked(requirements, lock)
    assert not wrong, STALE + "\n" + "\n".join(wrong)


def test_the_dev_lock_keeps_the_runtime_pins_and_every_pin_has_hashes():
    assert len(RUNTIME_LOCK) > len(RUNTIME) > 10
    differ = {
        name: (pin[0], DEV_LOCK.get(name, ("missing",))[0])
        for name, pin in RUNTIME_LOCK.items() if DEV_LOCK.get(name, ("",))[0] != pin[0]
    }
    assert not differ, f"tests would run other versions than the image: {differ}"
    no_hashes = [name for name, (_, hashes) in {**RUNTIME_LOCK, **DEV_LOCK}.items() if not hashes]
    assert not no_hashes, no_hashes
    dev_only = set(DEV_LOCK) - set(RUNTIME_LOCK)
    assert {canonicalize_name(requirement.name) for requirement in DEV} <= dev_only | set(
        RUNTIME_LOCK
    )
    assert not {"pytest", "ruff"} & set(RUNTIME_LOCK), "dev tools in the image's lock"


def test_the_unlock_check_sees_a_new_dependency_and_a_range_the_pin_left():
    lock = {"django": ("5.2.19", 2)}
    assert unlocked([Requirement("Django>=5.2,<5.3")], lock) == []
    assert unlocked([Requirement("Django>=6")], lock) == ["Django>=6: locked at 5.2.19"]
    assert unlocked([Requirement("newthing>=1")], lock) == ["newthing>=1: not in the lock"]
