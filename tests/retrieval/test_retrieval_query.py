import io
import logging
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from retrieval_helpers import make_image, to_tensor, write_collection
from skimage import data

from adir_exp.retrieval.build import build_index
from adir_exp.retrieval.distance import spherical_from_cosine
from adir_exp.retrieval.encoders import TextNotSupportedError
from adir_exp.retrieval.query import LeakageGuard, Neighbours, Retriever


def test_leakage_guard_removes_an_exact_copy_of_the_ground_truth(photo_index, effnet_128, caplog):
    x = to_tensor(Image.open(photo_index / "collection" / "chelsea.png"))
    y = F.avg_pool2d(x, 4)  # x4 super-resolution input
    retriever = Retriever(photo_index / "index", effnet_128, k=3)

    unguarded = retriever.query_image(y)
    assert unguarded[0].id == "chelsea.png"  # the copy is the nearest neighbour of its own degradation

    with caplog.at_level(logging.WARNING, logger="adir_exp.retrieval.query"):
        guarded = retriever.query_image(y, ground_truth=x)
    assert "chelsea.png" not in [n.id for n in guarded] and len(guarded) == 3
    assert [n.id for n in guarded.excluded] == ["chelsea.png"]
    assert guarded.excluded[0].exclusion.reason == "embedding"
    assert guarded.excluded[0].exclusion.score == pytest.approx(1.0, abs=1e-5)
    assert [n.id for n in guarded] == [n.id for n in retriever.query_image(y, k=4)][1:]
    assert "leakage guard" in caplog.text and "chelsea.png" in caplog.text


def test_leakage_guard_catches_rescaled_copies_but_not_other_photos(photo_index, effnet_128):
    retriever = Retriever(photo_index / "index", effnet_128, k=9)
    coffee = Image.open(photo_index / "collection" / "coffee.png")
    rescaled = to_tensor(coffee.resize((coffee.width // 2, coffee.height // 2), Image.BICUBIC))
    result = retriever.query_image(rescaled, ground_truth=rescaled)
    assert [n.id for n in result.excluded] == ["coffee.png"]
    assert len(result) == 9  # every other photo survives the 0.95 threshold

    strict = Retriever(photo_index / "index", effnet_128, k=9, leakage_guard=LeakageGuard(threshold=0.9999))
    caught = strict.query_image(rescaled, ground_truth=rescaled).excluded  # the embedding misses it, pixels don't
    assert [(n.id, n.exclusion.reason) for n in caught] == [("coffee.png", "patch")]
    off = Retriever(photo_index / "index", effnet_128, k=9, leakage_guard=LeakageGuard(enabled=False))
    assert off.query_image(rescaled, ground_truth=rescaled)[0].id == "coffee.png"


def test_guard_fetches_more_candidates_and_fails_clearly_when_too_few_remain(tmp_path, tiny_clip, fast_embed):
    image = make_image(np.random.default_rng(3), 40, 40)
    (tmp_path / "col").mkdir()
    for i in range(3):  # three identical copies plus two other images
        image.save(tmp_path / "col" / f"copy{i}.png")
    write_collection(tmp_path / "col" / "others", 2, seed=9)
    build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, embed=fast_embed)
    # random tiny-CLIP embeddings of different images still reach cosine 0.99: only exact copies pass 0.99999
    retriever = Retriever(tmp_path / "idx", tiny_clip, k=2, leakage_guard=LeakageGuard(threshold=0.99999))
    x = to_tensor(image)
    result = retriever.query_image(x, ground_truth=x)
    assert sorted(n.id for n in result) == ["others/a/img001.png", "others/b/img000.png"]
    assert sorted(n.id for n in result.excluded) == ["copy0.png", "copy1.png", "copy2.png"]
    with pytest.raises(ValueError, match="only 2 images remain"):
        retriever.query_image(x, k=3, ground_truth=x)


def test_text_query_and_image_loading_from_tar_shards(tmp_path, tiny_clip, fast_embed):
    with tarfile.open(tmp_path / "shard-0.tar", "w") as archive:
        for i in range(4):
            buffer = io.BytesIO()
            make_image(np.random.default_rng(i), 30, 30).save(buffer, format="PNG")
            info = tarfile.TarInfo(f"sample{i}.png")
            info.size = buffer.tell()
            buffer.seek(0)
            archive.addfile(info, buffer)
    build_index(str(tmp_path / "shard-0.tar"), tmp_path / "idx", tiny_clip, embed=fast_embed)
    retriever = Retriever(tmp_path / "idx", tiny_clip, k=2)
    neighbours = retriever.query_text("a photo of a cat")
    assert isinstance(neighbours, Neighbours) and len(neighbours) == 2
    assert all(n.path.startswith(str(tmp_path / "shard-0.tar") + "::") for n in neighbours)
    images = retriever.load_images(neighbours)
    assert [im.size for im in images] == [(30, 30), (30, 30)] and images[0].mode == "RGB"


def test_text_query_needs_a_text_encoder(photo_index, effnet_128):
    with pytest.raises(TextNotSupportedError):
        Retriever(photo_index / "index", effnet_128).query_text("a cat")


def test_query_image_takes_one_image(photo_index, effnet_128):
    retriever = Retriever(photo_index / "index", effnet_128, k=2)
    with pytest.raises(ValueError, match="one image at a time"):
        retriever.query_image(torch.rand(2, 3, 64, 64))
    grey = to_tensor(Image.fromarray(data.camera())).mean(1, keepdim=True)  # colorisation input: (1, 1, H, W)
    assert retriever.query_image(grey)[0].id == "camera.png"


def test_random_query_is_seeded_guarded_and_reports_distances(photo_index, effnet_128):
    retriever = Retriever(photo_index / "index", effnet_128, k=4)
    x = to_tensor(Image.open(photo_index / "collection" / "chelsea.png"))
    y = F.avg_pool2d(x, 4)
    first, again = retriever.query_random(y, seed=3), retriever.query_random(y, seed=3)
    assert [n.id for n in first] == [n.id for n in again] and len({n.id for n in first}) == 4
    draws = {tuple(n.id for n in retriever.query_random(y, seed=s)) for s in range(8)}
    assert len(draws) > 1  # the seed matters
    nearest = {n.id: n.distance for n in retriever.query_image(y, k=len(retriever.index))}
    assert all(n.distance == pytest.approx(nearest[n.id], abs=1e-5) for n in first)
    for seed in range(8):  # the guard removes the ground truth's copy from random draws too
        assert "chelsea.png" not in [n.id for n in retriever.query_random(y, seed=seed, ground_truth=x)]
    with pytest.raises(ValueError, match="holds"):
        retriever.query_random(y, k=len(retriever.index) + 1)


def test_retriever_builds_a_missing_index_from_a_collection(tmp_path, tiny_clip):
    write_collection(tmp_path / "col", 3, seed=4)
    retriever = Retriever(tmp_path / "idx", tiny_clip, k=2, build_from=tmp_path / "col")
    assert len(retriever.index) == 3 and (tmp_path / "idx" / "meta.json").is_file()
    assert len(Retriever(tmp_path / "idx", tiny_clip, k=2, build_from=tmp_path / "col").index) == 3  # reused



def test_retriever_rebuilds_an_index_of_another_folder(tmp_path, tiny_clip):
    """A cached auto-built index whose collection moved (an older install's bundled assets) is rebuilt, not
    queried for paths that are gone."""
    import shutil

    write_collection(tmp_path / "old", 3, seed=4)
    Retriever(tmp_path / "idx", tiny_clip, k=2, build_from=tmp_path / "old")
    shutil.move(tmp_path / "old", tmp_path / "new")
    retriever = Retriever(tmp_path / "idx", tiny_clip, k=2, build_from=tmp_path / "new")
    neighbours = retriever.query_image(torch.rand(1, 3, 32, 32))
    assert all(str(tmp_path / "new") in str(n.path) for n in neighbours)
    assert len(retriever.load_images(neighbours)) == 2


def test_retriever_without_index_or_collection_says_how_to_make_one(tmp_path, tiny_clip):
    from adir_exp.retrieval.index import IndexNotFoundError

    with pytest.raises(IndexNotFoundError, match="adir-make-data --domains"):
        Retriever(tmp_path / "idx", tiny_clip, k=2, build_from=tmp_path / "missing")

def test_random_query_within_a_folder_draws_only_from_it(tmp_path, effnet_128, fast_embed):
    """The oracle of the domain-shift study: K random images of the test image's own domain."""
    from adir_exp.retrieval.build import build_index

    rng = np.random.default_rng(0)
    for domain in ("astronomy", "documents"):
        (tmp_path / "collection" / domain).mkdir(parents=True)
        for i in range(4):
            Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(
                tmp_path / "collection" / domain / f"{i}.png")
    build_index(tmp_path / "collection", tmp_path / "index", effnet_128, embed=fast_embed)
    retriever = Retriever(tmp_path / "index", effnet_128, k=3)
    drawn = retriever.query_random(torch.rand(1, 3, 16, 16), seed=1, within="documents")
    assert len(drawn) == 3 and all(n.id.startswith("documents/") for n in drawn)
    again = retriever.query_random(torch.rand(1, 3, 16, 16), seed=1, within="documents")
    assert [n.id for n in again] == [n.id for n in drawn]  # seeded
    with pytest.raises(ValueError, match="under 'nebulae'"):
        retriever.query_random(torch.rand(1, 3, 16, 16), within="nebulae")


def test_domain_query_returns_the_nearest_to_the_folders_centroid_for_any_query(tmp_path, effnet_128, fast_embed):
    """ADIR-domain-KNN: one set per domain, the K images nearest to the renormalised mean embedding of the
    folder, drawn from the whole collection; the leakage guard still removes a copy of the ground truth."""
    rng = np.random.default_rng(0)
    for domain, count in (("astronomy", 4), ("documents", 5)):
        (tmp_path / "collection" / domain).mkdir(parents=True)
        for i in range(count):
            make_image(rng, 40, 48).save(tmp_path / "collection" / domain / f"{i}.png")
    build_index(tmp_path / "collection", tmp_path / "index", effnet_128, embed=fast_embed)
    retriever = Retriever(tmp_path / "index", effnet_128, k=3)
    ids = retriever.index.ids
    vectors = retriever.index.vectors(np.arange(len(ids)))
    centroid = vectors[[i for i, item in enumerate(ids) if item.startswith("documents/")]].mean(axis=0)
    similarity = vectors @ (centroid / np.linalg.norm(centroid))
    expected = [ids[row] for row in np.argsort(-similarity)[:3]]
    found = retriever.query_domain("documents")
    assert [n.id for n in found] == expected
    distances = spherical_from_cosine(np.sort(similarity)[::-1][:3])  # to the centroid, nearest first
    assert [n.distance for n in found] == pytest.approx(distances.tolist(), abs=1e-4)
    nearest = to_tensor(Image.open(tmp_path / "collection" / expected[0]))
    guarded = retriever.query_domain("documents", ground_truth=nearest)
    assert expected[0] not in [n.id for n in guarded] and [n.id for n in guarded][:2] == expected[1:]
    assert [n.id for n in guarded.excluded] == [expected[0]]
    assert [n.id for n in retriever.query_domain("documents", ground_truth=to_tensor(make_image(rng, 40, 48)))] \
        == expected  # the same set whatever the test image
    assert [n.id for n in retriever.query_domain("astronomy")] != expected  # another folder, another centroid
    with pytest.raises(ValueError, match="under 'nebulae'"):
        retriever.query_domain("nebulae")
