"""The model card written next to an exported prior: what data, what command, how long, how far it got."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml

from adir_exp.corpus.photos import MANIFEST_NAME, read_manifest
from adir_exp.prior_training.training import (
    final_loss,
    plot_loss,
    read_loss_csv,
    seconds_to_text,
)


def _data_section(train_root: Path) -> str:
    manifest = train_root.parent / MANIFEST_NAME
    if not manifest.is_file():
        count = sum(1 for _ in train_root.iterdir())
        return f"{count} training images in `{train_root}` (no corpus manifest found next to it).\n"
    entries = read_manifest(manifest)
    splits = Counter(e.split for e in entries)
    train_sources = Counter(e.source for e in entries if e.split == "train")
    lines = [
        (
            f"Corpus built by `adir-make-data` (manifest: `{MANIFEST_NAME}` beside the training folder): "
            f"{len(entries)} photos, "
            f"split by SHA-256 of the original into train {splits['train']} / retrieval {splits['retrieval']} / "
            f"held-out test {splits['test']}. Only the **train** split was used:"
        ),
        "",
        "| source | version | train images | licences |",
        "| --- | --- | --- | --- |",
    ]
    for source, count in sorted(train_sources.items()):
        rows = [e for e in entries if e.split == "train" and e.source == source]
        licences = ", ".join(sorted({e.licence for e in rows}))
        lines.append(f"| {source} | {rows[0].version} | {count} | {licences} |")
    return "\n".join(lines) + "\n"


def write_model_card(export_dir: Path, cfg: dict, command: str, steps: int, wall_seconds: float,
                     device: str) -> Path:
    """Plot the loss curve and write MODEL_CARD.md into ``export_dir``; returns the card's path."""
    export_dir = Path(export_dir)
    loss_csv = export_dir / "loss.csv"
    plot_loss(loss_csv, export_dir / "loss.png")
    step_axis, _, wall = read_loss_csv(loss_csv)
    config = json.loads((export_dir / "config.json").read_text())
    weights = export_dir / "diffusion_pytorch_model.safetensors"
    samples = steps * cfg['data']['batch_size']
    origin = (f"continued from {cfg['init_from']} (whose own card says how it was trained) on"
              if cfg.get("init_from") else "trained from scratch on")
    text = f"""# adir_prior: the embedded default diffusion prior

A small pixel-space DDPM (diffusers `UNet2DModel`, ε-prediction, 3 output channels → fixed variance) {origin}
{cfg['data']['crop']}×{cfg['data']['crop']} random crops of natural photos that registry packages ship.
It exists so the framework has a *real*, if weak, prior without downloading Guided Diffusion or Stable
Diffusion. Load it with `adir_exp.models.load_unet(adir_exp.prior_training.PRIOR_DIR)` or `model=adir_prior`.

## Data

{_data_section(Path(cfg['data']['root']))}
Crops: a photo and a pyramid level (short side {cfg['data']['crop']}·1.5^k up to the stored 384 px) drawn uniformly,
then a random {cfg['data']['crop']}×{cfg['data']['crop']} window and a random horizontal flip; pixels in [−1, 1].

## Training

- command: `{command}`
- steps: {steps} optimiser steps × batch {cfg['data']['batch_size']} = {samples} crops ({device})
- wall time: {seconds_to_text(wall_seconds)} (stopping rule: `trainer.max_steps={cfg['trainer']['max_steps']}` or
  `trainer.max_minutes={cfg['trainer']['max_minutes']}`, whichever comes first)
- loss: ε-MSE, t ~ U{{0…{cfg['schedule']['num_train_timesteps'] - 1}}}; final loss (mean of the last 100 steps)
  **{final_loss(loss_csv):.4f}**; first logged step {step_axis[0]}, last {step_axis[-1]} at {wall[-1]:.0f} s
- optimiser: AdamW lr {cfg['optim']['lr']}, weight decay {cfg['optim']['weight_decay']}, {cfg['optim']['warmup_steps']} warm-up
  steps, gradient clipping at norm {cfg['trainer']['gradient_clip_val']}; EMA decay min({cfg['optim']['ema_decay']}, (1+step)/(10+step)); the **EMA** weights are shipped
- schedule: {cfg['schedule']['beta_schedule']} β {cfg['schedule']['beta_start']}…{cfg['schedule']['beta_end']},
  {cfg['schedule']['num_train_timesteps']} steps
- network: block_out_channels {list(config['block_out_channels'])}, layers_per_block
  {config['layers_per_block']}, blocks {list(config['down_block_types'])}; weights
  `{weights.name}` ({weights.stat().st_size / 1e6:.1f} MB)
- seed {cfg['seed']}; full config:

```yaml
{yaml.safe_dump(cfg, sort_keys=False).strip()}
```

![loss curve](loss.png)

## Intended use and limits

- Intended: the default prior of `adir-run` / tests / demos on CPU, for small images (64–128 px), as a stand-in
  for the paper's ImageNet-scale priors when those weights are unavailable.
- This run took {seconds_to_text(wall_seconds)} ({device}) on the photos above: expect a weak prior. Unconditional samples
  are not photorealistic; in guided reconstruction most of the detail comes from the measurement. Numbers
  obtained with it are **not** comparable to the paper's GD/SD results.
- Its training data are wallpapers and sample photos (nature close-ups, landscapes, a few objects and
  textures); it knows nothing about faces, text or ImageNet classes beyond that.
- Fully convolutional (attention only at the lowest resolution), so it runs at sizes other than
  {cfg['data']['crop']}×{cfg['data']['crop']}; far from that size it has never seen the statistics it is asked about.
- Licences of the training photos are listed above (GPL-2+, CC-BY(-SA), CC0, public domain); the checkpoint is
  derived from them — check those terms before redistributing it outside this project.
"""
    card = export_dir / "MODEL_CARD.md"
    card.write_text(text)
    return card
