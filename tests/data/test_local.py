"""Importing hand-downloaded competition files: unpacked parts are linked, zips extracted safely."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from carvana.data.archives import UnsafeArchiveError, extract_to
from carvana.data.local import LocalSpec, import_local
from carvana.data.validate import ValidationSpec, validate
from carvana.layout import DatasetPaths

FOLDERS = ("train", "train_masks", "test")
FILES = ("train_masks.csv", "metadata.csv", "sample_submission.csv")
PARTS = FOLDERS + FILES


def _validate(data_dir: Path) -> dict:
    return validate(
        DatasetPaths(data_dir), ValidationSpec(image_size=(64, 96), train_images=48, test_images=32)
    )


def _zip_folder(folder: Path, archive: Path, top: str) -> None:
    """Zip ``folder`` as the competition does: every entry under one top folder ``top/``."""
    files = sorted(folder.iterdir())
    assert files, f"{folder} is empty"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{top}/", "")
        for path in files:
            zf.write(path, f"{top}/{path.name}")


def _zip_file(path: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(path, path.name)


def _zip_dataset(data_dir: Path, source: Path, *, hq: bool = False) -> None:
    """The competition's zips of a dataset: train.zip (or train_hq.zip), train_masks.zip, ..."""
    source.mkdir(parents=True, exist_ok=True)
    suffix = "_hq" if hq else ""
    for folder in FOLDERS:
        name = folder if folder == "train_masks" else f"{folder}{suffix}"
        _zip_folder(data_dir / folder, source / f"{name}.zip", top=name)
    for file in FILES:
        _zip_file(data_dir / file, source / f"{file}.zip")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def _unsafe_zip(archive: Path, entry: str) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train/0123456789ab_01.jpg", b"\xff\xd8\xff\xd9")
        zf.writestr(entry, b"evil\n")
    with zipfile.ZipFile(archive) as zf:
        assert entry in zf.namelist(), "zipfile rewrote the entry name; the test would prove nothing"


# --- unpacked parts -----------------------------------------------------------------------------


def test_unpacked_parts_are_linked_and_pass_validation(tiny_dataset, tmp_path):
    source = tiny_dataset.data_dir
    data_dir = tmp_path / "data"
    import_local(LocalSpec(source_dir=source), data_dir)
    assert sorted(entry.name for entry in data_dir.iterdir()) == sorted(PARTS)
    for part in PARTS:
        link = data_dir / part
        assert link.is_symlink(), part
        assert link.readlink() == source.resolve() / part
    report = _validate(data_dir)
    assert (report["train_images"], report["train_cars"], report["test_images"]) == (48, 3, 32)


def test_relative_source_dir_gives_links_that_work_from_anywhere(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_dataset.data_dir.parent)
    import_local(LocalSpec(source_dir=Path(tiny_dataset.data_dir.name)), tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert (tmp_path / "data" / "train").readlink().is_absolute()
    _validate(tmp_path / "data")


def test_unpacked_parts_and_zips_can_be_mixed(tiny_dataset, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "train").symlink_to(tiny_dataset.data_dir / "train")
    _zip_folder(tiny_dataset.data_dir / "train_masks", source / "train_masks.zip", top="train_masks")
    _zip_folder(tiny_dataset.data_dir / "test", source / "test.zip", top="test")
    for file in FILES:
        shutil.copyfile(tiny_dataset.data_dir / file, source / file)
    data_dir = tmp_path / "data"
    import_local(LocalSpec(source_dir=source), data_dir)
    assert (data_dir / "train").is_symlink()
    assert not (data_dir / "train_masks").is_symlink() and (data_dir / "train_masks").is_dir()
    _validate(data_dir)


# --- zips ---------------------------------------------------------------------------------------


def test_zips_are_extracted_and_pass_validation(tiny_dataset, tmp_path):
    source = tmp_path / "source"
    _zip_dataset(tiny_dataset.data_dir, source)
    assert sorted(entry.name for entry in source.iterdir()) == sorted(f"{part}.zip" for part in PARTS)
    data_dir = tmp_path / "data"
    import_local(LocalSpec(source_dir=source), data_dir)
    for part in PARTS:
        assert not (data_dir / part).is_symlink(), part
    assert all((data_dir / folder).is_dir() for folder in FOLDERS)
    assert all((data_dir / file).is_file() for file in FILES)
    # Nothing but the six parts: no staging or temporary folder left behind.
    assert sorted(entry.name for entry in data_dir.iterdir()) == sorted(PARTS)
    extracted, original = _tree(data_dir), _tree(tiny_dataset.data_dir)
    assert len(original) == 48 + 48 + 32 + 3
    assert extracted == original
    _validate(data_dir)


def test_hq_takes_train_hq_and_test_hq(tiny_dataset, tmp_path):
    source = tmp_path / "source"
    _zip_dataset(tiny_dataset.data_dir, source, hq=True)
    assert (source / "train_hq.zip").is_file() and not (source / "train.zip").exists()
    with zipfile.ZipFile(source / "train_hq.zip") as zf:
        assert {name.split("/")[0] for name in zf.namelist()} == {"train_hq"}
    # Decoys: the non-HQ parts are present too, and must not be taken.
    (source / "train").mkdir()
    (source / "train" / "decoy.txt").write_text("not HQ\n")
    _zip_folder(source / "train", source / "test.zip", top="test")
    data_dir = tmp_path / "data"
    import_local(LocalSpec(source_dir=source, hq=True), data_dir)
    assert not (data_dir / "train_hq").exists() and not (data_dir / "test_hq").exists()
    assert not (data_dir / "train").is_symlink()
    assert sorted(p.name for p in (data_dir / "train").iterdir()) == sorted(
        p.name for p in (tiny_dataset.data_dir / "train").iterdir()
    )
    assert _tree(data_dir / "test") == _tree(tiny_dataset.data_dir / "test")
    _validate(data_dir)


def test_hq_links_unpacked_hq_folders(tiny_dataset, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for folder in FOLDERS:
        name = folder if folder == "train_masks" else f"{folder}_hq"
        (source / name).symlink_to(tiny_dataset.data_dir / folder)
    for file in FILES:
        (source / file).symlink_to(tiny_dataset.data_dir / file)
    data_dir = tmp_path / "data"
    import_local(LocalSpec(source_dir=source, hq=True), data_dir)
    assert (data_dir / "train").readlink() == source.resolve() / "train_hq"
    assert (data_dir / "test").readlink() == source.resolve() / "test_hq"
    _validate(data_dir)


# --- missing parts ------------------------------------------------------------------------------


def test_missing_parts_are_all_listed(tiny_dataset, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "train").symlink_to(tiny_dataset.data_dir / "train")
    _zip_file(tiny_dataset.data_dir / "metadata.csv", source / "metadata.csv.zip")
    data_dir = tmp_path / "data"
    with pytest.raises(FileNotFoundError) as caught:
        import_local(LocalSpec(source_dir=source), data_dir)
    message = str(caught.value)
    assert message.startswith(f"{source} lacks: ")
    for part in ("train_masks", "test", "train_masks.csv", "sample_submission.csv"):
        assert f"{part} (or {part}.zip)" in message
    assert "metadata.csv (or" not in message
    assert "train (or" not in message
    assert not data_dir.exists(), "nothing is imported when a part is missing"


def test_hq_without_hq_images_names_them(tiny_dataset, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"train_hq \(or train_hq\.zip\), test_hq \(or test_hq\.zip\)$"
    ):
        import_local(LocalSpec(source_dir=tiny_dataset.data_dir, hq=True), tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_source_that_is_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        import_local(LocalSpec(source_dir=tmp_path / "nowhere"), tmp_path / "data")


# --- unsafe and malformed archives --------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("../evil.txt", "leaves the extraction folder"),
        ("train/../../evil.txt", "leaves the extraction folder"),
        ("ABSOLUTE", "has an absolute path"),
    ],
)
def test_unsafe_archive_writes_nothing(tmp_path, entry, problem):
    outside = tmp_path / "outside"
    source, data_dir = outside / "source", outside / "work" / "data"
    source.mkdir(parents=True)
    if entry == "ABSOLUTE":  # an absolute entry like /tmp/evil.txt, aimed at a folder the test can watch
        entry = str(outside / "evil.txt")
        assert entry.startswith("/")
    archive = source / "train.zip"
    _unsafe_zip(archive, entry)
    with pytest.raises(UnsafeArchiveError, match=problem) as caught:
        extract_to(archive, data_dir / "train")
    assert repr(entry) in str(caught.value)
    assert list(tmp_path.rglob("evil.txt")) == []
    assert not (data_dir / "train").exists()
    assert not data_dir.exists() or list(data_dir.iterdir()) == []


def test_unsafe_archive_through_import_local(tiny_dataset, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    _unsafe_zip(source / "train.zip", "../evil.txt")
    for part in PARTS[1:]:
        (source / part).symlink_to(tiny_dataset.data_dir / part)
    data_dir = tmp_path / "work" / "data"
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./evil\.txt' leaves the extraction folder"):
        import_local(LocalSpec(source_dir=source), data_dir)
    assert list(tmp_path.rglob("evil.txt")) == []
    assert not (data_dir / "train").exists()


def test_archive_with_two_top_level_folders(tmp_path):
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train/0123456789ab_01.jpg", b"\xff\xd8\xff\xd9")
        zf.writestr("extra/readme.txt", b"hello\n")
    target = tmp_path / "data" / "train"
    with pytest.raises(
        ValueError, match=r"expected one top-level folder or file, found 2: \['extra', 'train'\]"
    ):
        extract_to(archive, target)
    assert not target.exists()


def test_single_file_archive_becomes_the_file(tiny_dataset, tmp_path):
    archive = tmp_path / "train_masks.csv.zip"
    _zip_file(tiny_dataset.data_dir / "train_masks.csv", archive)
    target = tmp_path / "data" / "train_masks.csv"
    extract_to(archive, target)
    assert target.read_bytes() == (tiny_dataset.data_dir / "train_masks.csv").read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["train_masks.csv"]


# --- importing again ----------------------------------------------------------------------------


def test_importing_the_same_folder_twice(tiny_dataset, tmp_path):
    data_dir = tmp_path / "data"
    import_local(LocalSpec(source_dir=tiny_dataset.data_dir), data_dir)
    import_local(LocalSpec(source_dir=tiny_dataset.data_dir), data_dir)
    assert sorted(entry.name for entry in data_dir.iterdir()) == sorted(PARTS)
    _validate(data_dir)


def test_zips_replace_an_earlier_extraction(tiny_dataset, tmp_path):
    source = tmp_path / "source"
    _zip_dataset(tiny_dataset.data_dir, source)
    data_dir = tmp_path / "data"
    import_local(LocalSpec(source_dir=source), data_dir)
    (data_dir / "train" / "stale.txt").write_text("from an earlier import\n")
    import_local(LocalSpec(source_dir=source), data_dir)
    assert not (data_dir / "train" / "stale.txt").exists()
    _validate(data_dir)


def test_zips_replace_links_from_an_earlier_import(tiny_dataset, tmp_path):
    data_dir = tmp_path / "data"
    import_local(LocalSpec(source_dir=tiny_dataset.data_dir), data_dir)
    assert (data_dir / "train").is_symlink()
    source = tmp_path / "source"
    _zip_dataset(tiny_dataset.data_dir, source)
    import_local(LocalSpec(source_dir=source), data_dir)
    assert not (data_dir / "train").is_symlink()
    assert (tiny_dataset.data_dir / "train").is_dir(), "the source behind the old link is untouched"
    _validate(data_dir)


def test_importing_a_folder_into_itself_keeps_its_files(dataset_copy):
    data_dir = dataset_copy.data_dir
    before = _tree(data_dir)
    assert len(before) == 48 + 48 + 32 + 3
    with pytest.raises(ValueError, match=r"data_dir and local\.source_dir are the same folder"):
        import_local(LocalSpec(source_dir=data_dir), data_dir)
    assert (data_dir / "train").is_dir(), "train/ is gone"
    assert _tree(data_dir) == before
