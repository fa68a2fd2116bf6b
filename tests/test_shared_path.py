"""``shared_path`` (tests/conftest.py, the ``shared`` fixture): the paper's reference data in
../shared are never skipped silently; in CI their absence is a failure."""

from pathlib import Path

import pytest


@pytest.fixture
def shared_in(shared, monkeypatch):
    """``shared`` with ../shared moved to a given folder."""
    def move(folder):
        monkeypatch.setitem(shared.__globals__, "SHARED", folder)
        return shared
    return move


def test_a_present_path_is_returned(shared_in, tmp_path):
    (tmp_path / "reference").mkdir()
    assert shared_in(tmp_path)("reference") == tmp_path / "reference"


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_a_missing_path_skips_naming_it_outside_ci(shared_in, tmp_path, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as skipped:
        shared_in(tmp_path / "shared")("reference", "auto-mpg", "auto-mpg.csv")
    assert str(tmp_path / "shared" / "reference" / "auto-mpg" / "auto-mpg.csv") in str(
        skipped.value)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_path_fails_in_ci(shared_in, tmp_path, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as failed:
        shared_in(tmp_path / "shared")("reference", "README.md")
    assert str(tmp_path / "shared" / "reference" / "README.md") in str(failed.value)
    assert "CI" in str(failed.value)


def test_the_real_shared_folder_is_beside_the_repository(shared):
    assert shared.__globals__["SHARED"] == Path(__file__).resolve().parents[2] / "shared"
