"""Atomic writes: an output appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from carvana.atomic import atomic_path, write_text


class BoomError(Exception):
    pass


def test_a_file_is_renamed_into_place_when_the_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path  # same folder, so the rename stays on one file system
        assert temporary != target
        temporary.write_text("new", encoding="utf-8")
        assert not target.exists()  # nothing at the target until the block is done
    assert target.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failing_block_leaves_an_existing_file_untouched_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(BoomError), atomic_path(target) as temporary:
        temporary.write_text("half", encoding="utf-8")
        raise BoomError
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failing_block_creates_nothing_when_there_was_no_target(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(BoomError), atomic_path(target) as temporary:
        temporary.mkdir()
        (temporary / "part.bin").write_bytes(b"\0" * 10)
        raise BoomError
    assert list(tmp_path.iterdir()) == []


def test_a_failing_block_leaves_an_existing_folder_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("a", encoding="utf-8")
    with pytest.raises(BoomError), atomic_path(target) as temporary:
        temporary.mkdir()
        (temporary / "b.txt").write_text("b", encoding="utf-8")
        raise BoomError
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_existing_folder_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("a", encoding="utf-8")
    (target / "sub").mkdir()
    (target / "sub" / "c.txt").write_text("c", encoding="utf-8")
    with atomic_path(target) as temporary:
        temporary.mkdir()
        (temporary / "b.txt").write_text("b", encoding="utf-8")
    # The old files are gone, not merged with the new ones.
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_stale_temporary_from_a_killed_run_is_cleared(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with atomic_path(target) as temporary:  # learn the temporary's name (it holds the process id)
        temporary.write_text("first", encoding="utf-8")
    temporary.mkdir()  # what a killed run would leave behind
    (temporary / "stale").write_text("x", encoding="utf-8")
    with atomic_path(target) as again:
        assert again == temporary
        assert not again.exists()
        again.write_text("fresh", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "fresh"


def test_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    write_text(target, "x")
    assert target.read_text(encoding="utf-8") == "x"


def test_write_text_writes_utf8_and_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "note.txt"
    write_text(target, "first")
    write_text(target, "Citroën\n")
    assert target.read_bytes() == "Citroën\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt"]
