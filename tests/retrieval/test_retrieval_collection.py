import io
import tarfile

import numpy as np
import pytest
from retrieval_helpers import make_image, write_collection

from adir_exp.retrieval.collection import (
    FileUnit,
    SourceError,
    TarUnit,
    plan_units,
    read_item,
)


def _png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(np.random.default_rng(seed), 20, 30).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def test_folder_is_listed_recursively_in_a_stable_order(tmp_path):
    write_collection(tmp_path / "col", 7)
    (tmp_path / "col" / "notes.txt").write_text("not an image")
    units = plan_units(tmp_path / "col", shard_size=3)
    assert [len(u.items) for u in units] == [3, 3, 1] and all(isinstance(u, FileUnit) for u in units)
    ids = [item.id for u in units for item in u.items]
    assert ids == sorted(ids) and ids[0] == "a/img001.png" and len(set(ids)) == 7
    assert [u.digest() for u in units] == [u.digest() for u in plan_units(tmp_path / "col", 3)]


def test_file_list_resolves_relative_paths_and_skips_comments(tmp_path):
    paths = write_collection(tmp_path / "col", 3)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# three images\ncol/b/img000.png\n\n{paths[1]}  # absolute\ncol/b/img002.png\n")
    (unit,) = plan_units(listing, shard_size=10)
    assert [i.id for i in unit.items] == ["col/b/img000.png", str(paths[1]), "col/b/img002.png"]
    assert [i.path for i in unit.items] == [str(p.resolve()) for p in paths]


def test_tar_shards_by_range_and_glob(tmp_path):
    for n in range(3):
        write_tar(tmp_path / f"shard-{n:04d}.tar", {f"{n}_{i}.png": _png_bytes(i) for i in range(2)})
    by_range = plan_units(str(tmp_path / "shard-{0000..0002}.tar"), shard_size=1)
    by_glob = plan_units(str(tmp_path / "shard-*.tar"), shard_size=1)
    assert [u.tar for u in by_range] == [u.tar for u in by_glob] and len(by_range) == 3
    assert all(isinstance(u, TarUnit) for u in by_range)


def test_tar_members_are_items_and_can_be_read_back(tmp_path):
    tar = write_tar(tmp_path / "s.tar", {"k1.png": _png_bytes(1), "k1.json": b"{}", "k2.png": _png_bytes(2)})
    (unit,) = plan_units(str(tar), shard_size=1)
    items = list(unit.read())
    assert [item.id for item, _ in items] == ["s/k1.png", "s/k2.png"]
    item, payload = items[1]
    assert read_item(item.path) == payload == _png_bytes(2)


def test_truncated_tar_yields_what_precedes_the_damage_then_the_error(tmp_path):
    tar = write_tar(tmp_path / "s.tar", {"a.png": _png_bytes(1), "b.png": _png_bytes(2) * 20})
    tar.write_bytes(tar.read_bytes()[:2500])
    (unit,) = plan_units(str(tar), shard_size=1)
    records = list(unit.read())
    assert records[0][0].id == "s/a.png" and isinstance(records[0][1], bytes)
    assert isinstance(records[-1][1], Exception)


@pytest.mark.parametrize("make", ["empty_dir", "no_images", "missing_tar", "unknown"])
def test_unusable_sources_are_clear_errors(tmp_path, make):
    (tmp_path / "d").mkdir()
    if make == "no_images":
        (tmp_path / "d" / "readme.md").write_text("x")
    source = {
        "empty_dir": tmp_path / "d",
        "no_images": tmp_path / "d",
        "missing_tar": str(tmp_path / "x-{0..2}.tar"),
        "unknown": tmp_path / "nothing.bin",
    }[make]
    with pytest.raises(SourceError, match="empty collection|not found|neither"):
        plan_units(source, shard_size=4)
