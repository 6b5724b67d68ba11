"""yoso_core._io: a file appears whole or not at all, and a failed write leaves no temporary file."""

from __future__ import annotations

import pytest

from yoso_core._io import atomic_write, atomic_write_text, staged_dir


def test_atomic_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_text(target, "first\n")
    atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, error):
    target = tmp_path / "out.csv"
    target.write_text("old\n")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise error("disk full")

    with pytest.raises(error):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_staged_dir_swaps_a_directory_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("x")
    with staged_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
