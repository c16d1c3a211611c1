"""Atomic writes: a failed write leaves the old file and no temporary."""

import pytest

from napari_pyramids.files import write_atomically


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    write_atomically(target, lambda p: p.write_text("old"))
    assert target.read_text() == "old"

    def broken(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]
