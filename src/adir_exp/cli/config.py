"""The one module below the commands that knows Hydra and OmegaConf: where the configs live (inside the package,
so a wheel install finds them), the resolvers they use, checks of the values users override most (refused
before any work, naming the key), config digests, and turning config errors into one clear line."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import adir_exp.conf
from adir_exp.paths import ASSETS_DIR

CONF_DIR = Path(adir_exp.conf.__file__).parent
CONFIG_PATH = "pkg://adir_exp.conf"

# `${adir_assets:corpus/test}` in configs: a path inside the installed package's bundled data.
OmegaConf.register_new_resolver("adir_assets", lambda sub="": str(ASSETS_DIR / sub), replace=True)
# `${adir_basename:${retrieval.index_dir}}`: the last part of a path (names the default adapter bank after its index).
OmegaConf.register_new_resolver("adir_basename", lambda path: Path(str(path)).name, replace=True)


def experiment_label(root: DictConfig) -> str:
    """What one run of ``root`` is called: ``experiment_name``, else ``benchmark.name``, else ``<model>_<task>``
    (the suffix of adir-run's output directory)."""
    for key in ("experiment_name", "benchmark.name"):
        if value := OmegaConf.select(root, key, default=None):
            return str(value)
    return f"{OmegaConf.select(root, 'model.name')}_{OmegaConf.select(root, 'task.name')}"


def wandb_offline() -> bool:
    """``logger.offline`` of conf/logger/wandb.yaml: offline unless the user's own ``$WANDB_MODE`` asks for another
    mode (online, disabled), which Lightning would otherwise overwrite."""
    return os.environ.get("WANDB_MODE", "offline") in ("offline", "dryrun")


def wandb_group(mode: Any, app: str, sweep_dir: str, *, _root_: DictConfig) -> str:
    """The jobs of one sweep share ``<app>-<sweep folder>`` (e.g. ``bench-2026-12-03_10-00-00``); a single run is
    grouped with the other runs of its experiment."""
    if getattr(mode, "name", str(mode)) == "MULTIRUN":
        return f"{app}-{Path(str(sweep_dir)).name}"
    return experiment_label(_root_)


def wandb_name(overrides: str, *, _root_: DictConfig) -> str:
    """A run is named after what its command line changed (``hydra.job.override_dirname``), else its experiment."""
    return overrides or experiment_label(_root_)


# conf/logger/wandb.yaml: ${adir_wandb_offline:}, ${adir_wandb_group:${hydra:mode},...}, ${adir_wandb_name:...}
OmegaConf.register_new_resolver("adir_wandb_offline", wandb_offline, replace=True)
OmegaConf.register_new_resolver("adir_wandb_group", wandb_group, replace=True)
OmegaConf.register_new_resolver("adir_wandb_name", wandb_name, replace=True)


class ConfigError(ValueError):
    """A setting is wrong or missing; the message names the key and what would be right."""


@contextmanager
def reported_as(command: str, *errors: type[Exception], rerun: str | None = None) -> Iterator[None]:
    """Print a :class:`ConfigError` (or one of ``errors``: the input was wrong) as one line and exit 2, with no
    traceback and no result files. A full disk (exit 1) names the file that could not be written and a Ctrl-C
    (exit 130) says where the run stopped, each in one line; ``rerun``, the command line that resumes (finished
    rows are skipped), is added to both."""
    resume = f"; every finished row is kept, resume with: {rerun}" if rerun else ""
    try:
        yield
    except (ConfigError, *errors) as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as error:
        print(f"{command}: interrupted{f' ({error})' if str(error) else ''}{resume}", file=sys.stderr)
        sys.exit(130)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"{command}: error: cannot write {error.filename or 'a file'}: {error.strerror}{resume}", file=sys.stderr)
        sys.exit(1)


def command_line(command: str, *extra: str) -> str:
    """The command as it was typed (``command`` and this process's arguments), plus ``extra`` arguments, quoted
    for a shell: what a message tells the user to run again."""
    return shlex.join([command, *sys.argv[1:], *extra])


def resolved(node: Any) -> Any:
    """A config node as plain Python values, interpolations resolved against its root."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def instantiate_node(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with the failing key and the original error in the message."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ConfigError(f"{key}: {cause}") from cause


# Settings that change what is shown, never what is computed: kept out of every row key.
DISPLAY_ONLY = frozenset({"progress"})


def without_display(value: Any) -> Any:
    """A plain config value without the :data:`DISPLAY_ONLY` keys, at any depth."""
    if isinstance(value, dict):
        return {k: without_display(v) for k, v in value.items() if k not in DISPLAY_ONLY}
    if isinstance(value, list):
        return [without_display(v) for v in value]
    return value


def digest(value: Any) -> str:
    """16 hex digits of SHA-256 over a plain (resolved) config value's canonical JSON without its display-only
    settings (a progress bar never makes another row), the same everywhere."""
    text = json.dumps(without_display(value), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def selected(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


# Checks of the values users override most: each returns what is wrong with a value, or None.
Check = Callable[[Any], str | None]


def integer(minimum: int | None = None, optional: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            bound = "" if minimum is None else f" ≥ {minimum}"
            return f"must be an integer{bound}{' or null' if optional else ''}"
        return None

    return check


def number(minimum: float = 0.0, strict: bool = False) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < minimum or (strict and value == minimum):
            return f"must be a finite number {'>' if strict else '≥'} {minimum:g}"
        return None

    return check


def one_of(*options: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in options else f"is not one of {', '.join(options)}"

    return check


def steps(value: Any) -> str | None:
    """A respacing: a positive step count, per-section counts "a,b,c", or "ddimN"."""
    from adir_exp.diffusion import space_timesteps

    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        return "must be a positive number of steps (or sections 'a,b,c' or 'ddimN')"
    try:
        if not space_timesteps(1000, value):
            return "selects no step"
    except (ValueError, TypeError) as error:
        return f"is not a respacing ({error})"
    return None


def shard(value: Any) -> str | None:
    from adir_exp.evaluation.benchmark_images import parse_shard

    try:
        parse_shard(value)
    except ValueError as error:
        return str(error)
    return None


RULES: dict[str, Check] = {
    "seed": integer(),
    "image_size": integer(1, optional=True),
    "sampler.num_steps": steps,
    "sampler.guidance_scale": number(),
    "benchmark.first_n": integer(1, optional=True),
    "benchmark.shard": shard,
    "benchmark.size": integer(1, optional=True),
    "benchmark.preprocess": one_of("center_crop", "resize_crop", "tiles"),
    "preprocess": one_of("resize_crop", "center_crop"),
    "benchmark.grid_images": integer(0),
    "benchmark.tiles.scale": integer(1),
    "benchmark.tiles.per_image": integer(1),
    "benchmark.tiles.min_std": number(),
    "adaptation.iterations": integer(1),
    "adaptation.batch_size": integer(1),
    "adaptation.lr": number(strict=True),
    "adaptation.rank": integer(1),
    "adaptation.alpha": number(strict=True),
    "retrieval.k": integer(1),
    "bank.num_neighbourhoods": integer(1),
    "bank.seed": integer(),
    "bank.shard": shard,
    "task.physics.noise.sigma": number(),
}
METHOD_RULES: dict[str, Check] = {
    "sampler.num_steps": steps,
    "sampler.guidance_scale": number(),
    "sampler.step_size": number(strict=True),
}


def non_finite(value: Any, key: str = "") -> Iterator[tuple[str, float]]:
    """(dotted key, number) of each NaN or ±inf in a plain config value (no range check catches NaN)."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from non_finite(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from non_finite(item, f"{key}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        yield key, value


def validate(cfg: DictConfig) -> None:
    """Refuse non-finite numbers anywhere and wrong values of the keys in :data:`RULES` (and of each method's
    sampler) before any work."""
    from omegaconf.errors import OmegaConfBaseException

    checks = dict(RULES)
    for name in selected(cfg, "methods") or {}:
        checks |= {f"methods.{name}.{key}": check for key, check in METHOD_RULES.items()}
    literal = OmegaConf.to_container(cfg, resolve=False)  # interpolations stay text: each number is seen once
    flagged = dict(non_finite(literal))
    problems = [f"{key}={value!r} must be a finite number" for key, value in flagged.items()]
    for key, check in checks.items():
        if key in flagged:
            continue
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True, default=KeyError)
        except OmegaConfBaseException as error:
            problems.append(f"{key}: {error}".splitlines()[0])
            continue
        if value is KeyError or (flagged and isinstance(value, float) and not math.isfinite(value)):
            continue  # absent, or an interpolation of a number already named above
        if (message := check(value)) is not None:
            problems.append(f"{key}={value!r} {message}")
    if problems:
        raise ConfigError("; ".join(problems))
