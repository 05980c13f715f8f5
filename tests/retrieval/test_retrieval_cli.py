import json

import pytest
from retrieval_helpers import write_collection

from adir_exp.cli.index import main

FAST = ["--workers", "0", "--batch-size", "4", "--accelerator", "cpu", "--devices", "1", "--no-progress"]


@pytest.fixture
def tiny_yaml(tmp_path, tiny_clip_config):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "_target_: adir_exp.retrieval.encoders.OpenClipEncoder\n"
        "model_name: tiny-clip\npretrained: null\nrandom_init: true\n"
        f"model_config: {tiny_clip_config}\n"
    )
    return path


def test_build_then_query_image_and_text(tmp_path, tiny_yaml, capsys):
    paths = write_collection(tmp_path / "col", 7)
    index = tmp_path / "idx"
    assert main(["build", str(tmp_path / "col"), "-o", str(index), "--encoder", str(tiny_yaml), *FAST]) == 0
    assert "7 images indexed (flat), 0 unreadable" in capsys.readouterr().out

    out = tmp_path / "neighbours.json"
    argv = ["query", "-i", str(index), "--encoder", str(tiny_yaml), "-k", "3"]
    assert (
        main(
            [
                *argv,
                "--image",
                str(paths[2]),
                "--ground-truth",
                str(paths[2]),
                "--threshold",
                "0.99999",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert len(result["neighbours"]) == 3 and [n["id"] for n in result["excluded"]] == ["b/img002.png"]
    assert "excluded  b/img002.png" in capsys.readouterr().out

    assert main([*argv, "--text", "a photo of a dog"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_errors_are_reported_not_raised(tmp_path, tiny_yaml, photo_index, capsys):
    photos = ["-i", str(photo_index / "index"), "--encoder-set", "image_size=128"]
    assert main(["query", *photos, "--text", "a cat"]) == 1
    assert "embeds images only" in capsys.readouterr().err
    assert main(["query", "-i", str(photo_index / "index"), "--encoder", str(tiny_yaml), "--image", "x.png"]) == 1
    assert "built with encoder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["build", str(tmp_path / "empty"), "-o", str(tmp_path / "i"), *FAST]) == 1
    assert "empty collection" in capsys.readouterr().err
    assert main(["query", "-i", str(photo_index / "index"), "--encoder", "no-such", "--text", "x"]) == 1
    assert "efficientnet_lite0" in capsys.readouterr().err  # lists the known encoder configs


def test_encoder_set_overrides_config_fields(tmp_path, tiny_yaml, capsys):
    write_collection(tmp_path / "col", 3)
    assert main(["build", str(tmp_path / "col"), "-o", str(tmp_path / "idx"), "--encoder", str(tiny_yaml), *FAST]) == 0
    argv = ["query", "-i", str(tmp_path / "idx"), "--encoder", str(tiny_yaml), "--text", "x", "-k", "1"]
    assert main([*argv, "--encoder-set", "seed=3"]) == 1
    assert "built with encoder" in capsys.readouterr().err


def test_robustness_writes_table_and_plot(tmp_path, photo_index, capsys):
    task = tmp_path / "sr4.yaml"
    task.write_text("physics:\n  operator:\n    _target_: torch.nn.AvgPool2d\n    kernel_size: 4\n")
    out = tmp_path / "report"
    argv = [
        "robustness",
        "-i",
        str(photo_index / "index"),
        "--encoder-set",
        "image_size=128",
        "--images",
        str(photo_index / "collection"),
        "--task",
        str(task),
        "-k",
        "1",
        "3",
        "--size",
        "128",
        "--limit",
        "3",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    lines = (out / "robustness.csv").read_text().splitlines()
    assert lines[0] == "degradation,k,recall_mean,recall_std,n_images"
    assert [line.split(",")[:2] for line in lines[1:]] == [["sr4", "1"], ["sr4", "3"]]
    assert all(line.endswith(",3") for line in lines[1:])
    assert (out / "robustness.png").stat().st_size > 1000
    assert "sr4" in capsys.readouterr().out


def test_robustness_with_the_task_operators(tmp_path, photo_index):
    """The degradations of conf/task (adir_exp.operators): SR output is smaller, colorization has one channel."""
    out = tmp_path / "report"
    argv = ["robustness", "-i", str(photo_index / "index"), "--encoder-set", "image_size=128",
            "--images", str(photo_index / "collection"), "--task", "sr4", "--task", "colorization",
            "-k", "2", "--size", "64", "--limit", "2", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = (out / "robustness.csv").read_text().splitlines()[1:]
    assert [row.split(",")[:2] for row in rows] == [["sr4", "2"], ["colorization", "2"]]
