"""The environment a run records: whether the checkout it ran from was clean."""

from __future__ import annotations

import subprocess

import pytest

from benchmarks.running import environment


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git repository with one code file and one committed store under results/, as the run's REPO_ROOT."""
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "runs.sqlite").write_bytes(b"store v1")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(environment, "REPO_ROOT", tmp_path)
    return tmp_path


def test_a_changed_committed_store_leaves_the_checkout_clean(checkout):
    assert environment.is_dirty() is False
    (checkout / "results" / "runs.sqlite").write_bytes(b"store v2, migrated on open")
    assert environment.is_dirty() is False


def test_a_changed_code_file_makes_it_dirty(checkout):
    (checkout / "code.py").write_text("x = 2\n")
    assert environment.is_dirty() is True


def test_untracked_files_do_not_count(checkout):
    (checkout / "scratch.py").write_text("y = 1\n")
    assert environment.is_dirty() is False
