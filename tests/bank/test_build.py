"""Building a bank: the manifest and the peft-layout adapters, a killed build that resumes to the same bank, shards
that share one bank, and a bank directory of other settings refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from adir_exp.adaptation import LoRAFit
from adir_exp.bank import AdapterBank, BankError, build_bank
from adir_exp.bank.build import fitting_rows
from adir_exp.models import random_adm
from tests.adaptation.conftest import TINY_ADM


def build(directory: Path, retriever, prior, fit, physics, shard=(0, 1), count: int = 2):
    return build_bank(directory, retriever.index, retriever.encoder.name, prior, fit, physics, "sr4",
                      torch.device("cpu"), count, seed=0, shard=shard, progress=False)


def same_adapters(first: Path, second: Path) -> bool:
    """Equal adapter tensors in both banks (not bytes: safetensors orders its header metadata as it likes)."""
    names = sorted(p.name for p in (first / "adapters").iterdir())
    if names != sorted(p.name for p in (second / "adapters").iterdir()):
        return False
    weights = [[load_file(bank / "adapters" / n / "adapter_model.safetensors") for n in names] for bank in (first, second)]
    return all(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) for a, b in zip(*weights, strict=True))


REAL_FIT = LoRAFit.fit


class Killed(Exception):
    """The build's process dying between two fits."""


def counting_fits(monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> list[int]:
    """Count LoRAFit.fit calls; with ``stop_after``, the build dies once that many fits have finished."""
    calls: list[int] = []

    def fit(self, *args, **kwargs):
        if stop_after is not None and len(calls) == stop_after:
            raise Killed
        calls.append(1)
        return REAL_FIT(self, *args, **kwargs)

    monkeypatch.setattr(LoRAFit, "fit", fit)
    return calls


def test_a_bank_holds_manifest_centroids_and_adapters_plain_peft_loads(tmp_path, retriever, tiny_prior, fit,
                                                                       physics) -> None:
    report = build(tmp_path / "bank", retriever, tiny_prior, fit, physics)
    assert report.complete and report.fitted == ["n000", "n001"] and not report.already_done
    manifest = json.loads((tmp_path / "bank" / "bank.json").read_text())
    identity = manifest["identity"]
    assert (manifest["format"], identity["num_neighbourhoods"], identity["seed"]) == ("adir-bank/1", 2, 0)
    assert identity["encoder"] == retriever.encoder.name and identity["index"] == retriever.index.fingerprint()
    assert identity["prior"] == {"name": "adm_tiny", "fingerprint": tiny_prior.fingerprint()}
    assert identity["adaptation"] == fit.settings() and len(identity["adaptation_digest"]) == 16
    members = [n["members"] for n in manifest["neighbourhoods"]]
    assert sorted(sum(members, [])) == sorted(retriever.index.ids)  # every collection image in one neighbourhood
    assert {tuple(m) for m in members} == {("img0.png", "img2.png", "img4.png"), ("img1.png", "img3.png", "img5.png")}
    for entry in manifest["neighbourhoods"]:
        assert len(entry["losses"]) == fit.iterations and entry["seconds"] > 0
        assert entry["fitted_on"] == entry["members"]  # 3 members < 2 × 2 crops: all of them
    bank = AdapterBank(tmp_path / "bank")
    assert bank.centroids.shape == (2, retriever.index.embed_dim)
    for n in range(len(bank)):
        wrapped = PeftModel.from_pretrained(random_adm(TINY_ADM, seed=0), bank.adapter(n))
        assert wrapped.peft_config["default"].r == 4
        assert any("lora_B" in k and v.abs().sum() > 0 for k, v in wrapped.state_dict().items())  # it was fitted


def test_a_killed_build_resumes_with_the_rest_and_equals_an_uninterrupted_one(tmp_path, retriever, tiny_prior, fit,
                                                                             physics, monkeypatch) -> None:
    build(tmp_path / "whole", retriever, tiny_prior, fit, physics)
    counting_fits(monkeypatch, stop_after=1)
    with pytest.raises(Killed):
        build(tmp_path / "killed", retriever, tiny_prior, fit, physics)
    with pytest.raises(BankError, match=r"incomplete \(1 of 2 neighbourhoods fitted\)"):
        AdapterBank(tmp_path / "killed")
    calls = counting_fits(monkeypatch)
    report = build(tmp_path / "killed", retriever, tiny_prior, fit, physics)
    assert (len(calls), report.already_done, report.fitted, report.complete) == (1, ["n000"], ["n001"], True)
    assert AdapterBank(tmp_path / "killed").digest == AdapterBank(tmp_path / "whole").digest
    assert same_adapters(tmp_path / "killed", tmp_path / "whole")


def test_two_shards_build_one_bank_equal_to_a_single_build(tmp_path, retriever, tiny_prior, fit, physics) -> None:
    first = build(tmp_path / "sharded", retriever, tiny_prior, fit, physics, shard=(0, 2))
    assert (first.fitted, first.complete) == (["n000"], False)
    second = build(tmp_path / "sharded", retriever, tiny_prior, fit, physics, shard=(1, 2))
    assert (second.fitted, second.complete) == (["n001"], True)
    build(tmp_path / "single", retriever, tiny_prior, fit, physics)
    assert AdapterBank(tmp_path / "sharded").digest == AdapterBank(tmp_path / "single").digest


@pytest.mark.parametrize(("change", "named"), [("lr", "adaptation"), ("count", "num_neighbourhoods"),
                                               ("weights", "prior")])
def test_resuming_into_a_bank_of_other_settings_is_refused_before_any_fit(tmp_path, retriever, tiny_prior, fit,
                                                                          physics, monkeypatch, change, named) -> None:
    build(tmp_path / "bank", retriever, tiny_prior, fit, physics, shard=(0, 2))
    calls = counting_fits(monkeypatch)
    count = 2
    if change == "lr":
        fit = LoRAFit(iterations=2, batch_size=2, lr=5e-3, rank=4, crop_size=32, progress=False)
    elif change == "count":
        count = 3
    else:
        with torch.no_grad():
            next(tiny_prior.network.parameters()).add_(1e-3)
    with pytest.raises(BankError, match=f"built with other settings \\({named}"):
        build(tmp_path / "bank", retriever, tiny_prior, fit, physics, count=count)
    assert not calls


def test_a_neighbourhood_larger_than_a_fit_uses_is_fitted_on_a_seeded_subset() -> None:
    rows = list(range(100, 110))
    chosen = fitting_rows(rows, 4, seed=7)
    assert len(set(chosen)) == 4 and set(chosen) <= set(rows) and chosen == sorted(chosen)
    assert fitting_rows(rows, 4, seed=7) == chosen and fitting_rows(rows, 4, seed=8) != chosen
    assert fitting_rows(rows[:3], 4, seed=7) == rows[:3]

