"""The Makefile behind the README's two commands, run with stand-in system tools.

``make system-deps`` runs against a PATH that holds only ``make`` and fakes of
``dpkg-query``, ``apt-get`` and ``xvfb-run``, so nothing is installed and the
real machine's packages do not matter.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _system_packages() -> list[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    (line,) = re.findall(r"^SYSTEM_PACKAGES :=(.*)$", text, re.MULTILINE)
    return line.split()


def _fake(bin_dir: Path, name: str, body: str) -> None:
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(0o755)


def _system_deps(tmp_path, *, statuses=None, dpkg=True, xvfb=True, apt_fails=False):
    """Run ``make system-deps``; return (result, the apt-get calls made).

    ``statuses`` maps the packages that are not installed to what dpkg says of
    them (None: dpkg has never heard of it); every other package is installed.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").symlink_to(MAKE)
    log = tmp_path / "apt-get.log"
    if dpkg:  # answers dpkg-query -W -f='${Status}' PACKAGE as dpkg does
        cases = "".join(
            f"  {package}) printf '{status}';;\n"
            if status is not None
            else f"  {package}) echo 'dpkg-query: no packages found' >&2; exit 1;;\n"
            for package, status in (statuses or {}).items()
        )
        _fake(
            bin_dir,
            "dpkg-query",
            'for package; do :; done\ncase "$package" in\n'
            f"{cases}  *) printf 'install ok installed';;\nesac\n",
        )
    if xvfb:
        _fake(bin_dir, "xvfb-run", "exit 0\n")
    _fake(bin_dir, "apt-get", f'echo "$*" >> {log}\nexit {1 if apt_fails else 0}\n')
    result = subprocess.run(
        [MAKE, "--no-print-directory", "-C", str(ROOT), "system-deps"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


def test_the_packages_include_qts_xcb_libraries():
    packages = _system_packages()
    assert {"xvfb", "xauth", "libxcb-icccm4", "libxcb-keysyms1"} <= set(packages)


def test_nothing_is_installed_when_every_package_is(tmp_path):
    result, calls = _system_deps(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == []


def test_a_missing_qt_library_is_installed_although_xvfb_run_exists(tmp_path):
    result, calls = _system_deps(tmp_path, statuses={"libxcb-icccm4": None})
    assert result.returncode == 0, result.stderr
    assert calls == ["update -qq", "install -y -qq libxcb-icccm4"]
    assert "libxcb-icccm4" in result.stdout


def test_only_the_missing_packages_are_installed(tmp_path):
    result, calls = _system_deps(
        tmp_path, statuses={"xvfb": None, "libxcb-keysyms1": None}
    )
    assert result.returncode == 0, result.stderr
    assert calls[-1] == "install -y -qq xvfb libxcb-keysyms1"


def test_a_package_removed_but_not_purged_counts_as_missing(tmp_path):
    result, calls = _system_deps(
        tmp_path, statuses={"xauth": "deinstall ok config-files"}
    )
    assert result.returncode == 0, result.stderr
    assert calls[-1] == "install -y -qq xauth"


def test_a_failed_install_names_the_packages_and_fails(tmp_path):
    result, _ = _system_deps(tmp_path, statuses={"libegl1": None}, apt_fails=True)
    assert result.returncode != 0
    assert "could not install: libegl1" in result.stderr
    assert "sudo apt-get install libegl1" in result.stderr


def test_without_dpkg_an_existing_xvfb_run_is_trusted(tmp_path):
    result, calls = _system_deps(tmp_path, dpkg=False)
    assert result.returncode == 0, result.stderr
    assert calls == []


def test_without_dpkg_or_xvfb_run_the_error_says_what_to_install(tmp_path):
    result, calls = _system_deps(tmp_path, dpkg=False, xvfb=False)
    assert result.returncode != 0
    assert calls == []
    assert "xvfb-run is missing" in result.stderr
    assert "libxcb-cursor0" in result.stderr


def test_headless_demo_saves_outside_the_committed_images(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    out = subprocess.run(
        [MAKE, "--no-print-directory", "-n", "-C", str(ROOT), "demo"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (line,) = [line for line in out.splitlines() if "--screenshot" in line]
    path = line.split("--screenshot", 1)[1].split()[0]
    assert path == "build/demo.png"
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", path], check=False
    )
    assert ignored.returncode == 0, f"{path} is not git-ignored"
    assert "docs/images" not in out


def test_python_older_than_3_11_is_refused_with_a_clear_message(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").symlink_to(MAKE)
    # the only Python on the PATH, under both names: it says it is 3.10
    _fake(
        bin_dir, "python3", 'case "$*" in *-V*) echo "Python 3.10.14";; esac\nexit 1\n'
    )
    (bin_dir / "python3.10").symlink_to(bin_dir / "python3")
    venv = tmp_path / "venv"
    result = subprocess.run(
        [MAKE, "--no-print-directory", "-C", str(ROOT), "PYTHON=python3.10"]
        + [f"VENV={venv}", f"{venv}/.installed"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stderr
    assert "Python 3.10.14" in result.stderr
    assert not venv.exists()
