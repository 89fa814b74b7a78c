"""The ``phds`` front door: a version, help, and one-line errors for mistakes, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from phds import __version__


def _phds(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phds.cli.main", *args], capture_output=True, text=True, check=False
    )


def test_version_prints_and_exits_zero() -> None:
    done = _phds("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"phds {__version__}")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("stduy",), "Did you mean 'study'"),
        (("study", "verify"), "Missing argument 'ID'"),
        (("--nope",), "No such option"),
    ],
)
def test_a_mistyped_command_is_a_usage_error_without_a_traceback(args: tuple[str, ...], says: str) -> None:
    done = _phds(*args)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr


def test_no_command_prints_the_help() -> None:
    """As click does for a group run without a command: the help, and the usage exit code."""
    done = _phds()
    assert done.returncode in (0, 2) and "Usage:" in done.stdout and "Traceback" not in done.stderr
