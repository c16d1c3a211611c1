"""What a user installs: the built wheel and sdist carry the license, links,
Python floor and manifest, and the citation and changelog files hold together.

The distributions are built with hatchling (the build backend, in the
``testing`` extra), from the checkout and, as pip does, from the sdist.
"""

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import npe2
import pytest
import yaml
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# napari.settings.get_plugin_settings, which the widgets' settings use
NAPARI_WITH_PLUGIN_SETTINGS = Version("0.9")


def _build(source: Path, out: Path, *targets: str) -> None:
    pytest.importorskip(
        "hatchling",
        reason="hatchling, which builds the distributions, is not installed "
        "(it is in the testing extra: pip install -e '.[testing]')",
    )
    args = [arg for target in targets for arg in ("-t", target)]
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", *args, "-d", str(out)],
        cwd=source,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(wheel, sdist) built from the checkout, and a wheel built from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    _build(ROOT, out, "sdist", "wheel")
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    unpacked = tmp_path_factory.mktemp("sdist")
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="tar")
    rebuilt = tmp_path_factory.mktemp("from-sdist")
    _build(next(unpacked.iterdir()), rebuilt, "wheel")
    (from_sdist,) = rebuilt.glob("*.whl")
    return wheel, sdist, from_sdist


def _wheel_metadata(wheel: Path) -> Metadata:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Metadata.from_email(archive.read(name), validate=True)


def test_wheel_metadata_has_license_links_and_python_floor(dists):
    wheel, _, _ = dists
    meta = _wheel_metadata(wheel)
    assert str(meta.license_expression) == "BSD-3-Clause"
    assert meta.license_files == ["LICENSE"]
    assert not [c for c in meta.classifiers if c.startswith("License ::")]
    assert meta.requires_python == SpecifierSet(">=3.11")
    urls = meta.project_urls
    for label in ("Homepage", "Source Code", "Bug Tracker", "Documentation"):
        assert urls[label].startswith("https://github.com/napari-pyramids/"), label
    assert urls["Bug Tracker"].endswith("/issues")
    for classifier in (
        "Framework :: napari",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3.11",
    ):
        assert classifier in meta.classifiers
    assert any(c.startswith("Development Status ::") for c in meta.classifiers)


def test_wheel_holds_license_manifest_and_weights(dists):
    for wheel in (dists[0], dists[2]):  # from the checkout, and from the sdist
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            (license_name,) = [n for n in names if n.endswith("licenses/LICENSE")]
            assert archive.read(license_name) == (ROOT / "LICENSE").read_bytes()
            manifest = archive.read("napari_pyramids/napari.yaml")
            assert (
                manifest
                == (ROOT / "src" / "napari_pyramids" / "napari.yaml").read_bytes()
            )
            assert "napari_pyramids/nn/weights/nuclei.safetensors" in names
            (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
            assert b"napari_pyramids:napari.yaml" in archive.read(entry_points)


def test_sdist_holds_license_changelog_and_citation(dists):
    _, sdist, _ = dists
    with tarfile.open(sdist) as archive:
        top = {
            Path(n).relative_to(Path(n).parts[0]).as_posix() for n in archive.getnames()
        }
    assert {"LICENSE", "CHANGELOG.md", "CITATION.cff", "README.md"} <= top


def test_license_is_bsd_3_clause_of_the_developers():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, napari-pyramids developers" in text
    assert "Neither the name of the copyright holder" in text  # the third clause


def test_python_floor_matches_classifiers_and_ruff_target():
    floor = Version(PROJECT["requires-python"].removeprefix(">="))
    listed = [
        Version(c.rsplit(" :: ", 1)[1])
        for c in PROJECT["classifiers"]
        if c.startswith("Programming Language :: Python :: 3.")
    ]
    assert min(listed) == floor
    target = PYPROJECT["tool"]["ruff"]["target-version"]
    assert target == f"py{floor.major}{floor.minor}"


def test_napari_floor_has_the_plugin_settings_the_manifest_declares():
    manifest = npe2.PluginManifest.from_file(
        ROOT / "src" / "napari_pyramids" / "napari.yaml"
    )
    assert manifest.contributions.configurations  # the settings the widgets use
    (napari,) = [
        Requirement(r) for r in PROJECT["dependencies"] if r.startswith("napari")
    ]
    floor = min(Version(s.version) for s in napari.specifier if s.operator == ">=")
    assert floor >= NAPARI_WITH_PLUGIN_SETTINGS


def test_citation_is_cff_1_2_and_agrees_with_the_package():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # the keys CFF 1.2.0 requires
    for key in ("cff-version", "message", "title", "authors"):
        assert citation[key], key
    assert citation["cff-version"] == "1.2.0"
    assert all("name" in a or "family-names" in a for a in citation["authors"])
    assert str(citation["version"]) == PROJECT["version"]
    assert citation["license"] == PROJECT["license"]
    assert citation["repository-code"] == PROJECT["urls"]["Source Code"]


def test_changelog_keeps_a_changelog_form():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert "## [Unreleased]" in text
    assert "[Unreleased]: https://github.com/napari-pyramids/napari-pyramids/" in text
    sections = {line for line in text.splitlines() if line.startswith("### ")}
    assert sections <= {
        "### Added",
        "### Changed",
        "### Deprecated",
        "### Removed",
        "### Fixed",
        "### Security",
    }
