"""A parameter sweep: how the transform's resolution changes the cross-validated accuracy.

``pipeline.sweep --sweep n_mels=32,64,128 --sweep hop_length=256,512,1024`` runs every approach
of a comparison grid (``comparison.Job``) at every setting of the swept parameters, each with
the k-fold song-level evaluation (and seed repeats where the approach depends on the seed:
``repeats.cross_validate_repeats``), into

    <report>/runs/<transform>_<model>/<setting>/fold_<i>     e.g. .../mel_cnn2d/hop_length-256/

so a re-run reuses every finished run and fold, and a killed sweep resumes where it stopped.
``sweep_report`` writes the tables and plots.

Settings (``SweepConfig.sweep_grid``): ``product``, every combination of the axes; or
``one-at-a-time``, each axis varied alone with the others at the approach's base configuration
(the flags, or what the approach presets).  A parameter that the approach's transform does not
use (``n_mels`` for ``svc on stft``, every transform parameter for ``musicnn``, whose input is
fixed by the pretrained network) is not varied for it: the settings that differ only there are
one run.  A setting that cannot run (``n_mels`` above ``n_fft/2+1``, a hop longer than the FFT,
a window shorter than ``n_fft``, musicnn at another rate, ...) is skipped and listed with its
reason; the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import typing
from pathlib import Path
from typing import Any, Optional

from core.config import TransformConfig, WindowConfig
from core.errors import ConfigError, EmptySplitError, RunDirError
from pipeline.experiments.comparison_runs import Job, approach_name

WINDOW_PARAMS = ("window_seconds", "step_seconds", "sample_rate")
STFT_PARAMS = ("n_fft", "hop_length", "win_length")
MEL_PARAMS = STFT_PARAMS + ("n_mels", "fmin", "fmax")
SWEEPABLE = WINDOW_PARAMS + MEL_PARAMS + ("n_mfcc",)
# The parameters each transform reads (besides the window's): the others do not change its run.
TRANSFORM_PARAMS = {"raw": (), "fft": (), "stft": STFT_PARAMS, "mel": MEL_PARAMS,
                    "mfcc": MEL_PARAMS + ("n_mfcc",), "musicnn": ()}


@dataclasses.dataclass
class Cell:
    """One approach at one setting: the job to run, or the reason it cannot."""

    job: Job
    setting: dict  # every swept parameter this approach uses -> its value here
    key: str  # the run folder's name under <report>/runs/<transform>_<model>/
    base: dict = dataclasses.field(default_factory=dict)  # those parameters in the base config
    skipped: Optional[str] = None
    summary: Optional[dict] = None
    run_dir: Optional[Path] = None

    @property
    def approach(self) -> str:
        return approach_name(self.job.transform, self.job.model)


def _section(name: str):
    return WindowConfig if name in WINDOW_PARAMS else TransformConfig


def _parse_value(name: str, text: str):
    cls = _section(name)
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) is typing.Union:  # Optional[X]
        if text.lower() in ("none", "null"):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        return hint(float(text)) if hint is int and float(text).is_integer() else hint(text)
    except ValueError as e:
        raise ConfigError(f"--sweep {name}: {text!r} is not a {hint.__name__}") from e


def parse_axes(items: list[str]) -> dict[str, list]:
    """``["n_mels=32,64", "hop_length=256,512"]`` -> ``{"n_mels": [32, 64], ...}``, in order."""
    axes: dict[str, list] = {}
    for item in items or []:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ConfigError(f"--sweep expects NAME=V1,V2,..., got {item!r}")
        if name not in SWEEPABLE:
            raise ConfigError(f"--sweep {name}: not a sweepable parameter; valid: "
                              f"{', '.join(SWEEPABLE)}")
        if name in axes:
            raise ConfigError(f"--sweep {name} given twice")
        parsed = [_parse_value(name, v.strip()) for v in values.split(",") if v.strip()]
        axes[name] = list(dict.fromkeys(parsed))  # duplicates once, order kept
    if not axes:
        raise ConfigError("give at least one --sweep NAME=V1,V2,...")
    return axes


def raw_settings(axes: dict[str, list], grid: str) -> list[dict]:
    """The settings of the axes: every combination (``product``), or each axis's values alone
    (``one-at-a-time``: the other parameters stay at the base configuration)."""
    if grid == "product":
        return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    return [{name: value} for name, values in axes.items() for value in values]


def base_value(job: Job, name: str):
    return getattr(job.cfg.window if name in WINDOW_PARAMS else job.cfg.transform, name)


def applies(job: Job, name: str) -> bool:
    return name in WINDOW_PARAMS or name in TRANSFORM_PARAMS[job.transform]


def setting_key(setting: dict) -> str:
    return "_".join(f"{k}-{v}" for k, v in setting.items()) or "base"


def with_setting(job: Job, setting: dict) -> Job:
    """The job at ``setting``, not yet checked (``check_setting``)."""
    window = {k: v for k, v in setting.items() if k in WINDOW_PARAMS}
    transform = {k: v for k, v in setting.items() if k not in WINDOW_PARAMS}
    cfg = dataclasses.replace(job.cfg, window=dataclasses.replace(job.cfg.window, **window),
                              transform=dataclasses.replace(job.cfg.transform, **transform))
    return dataclasses.replace(job, cfg=cfg)


def check_setting(job: Job) -> None:
    """ConfigError (the reason) when the job's configuration cannot run."""
    job.cfg.validate()
    check_resolution(job.cfg)


def check_resolution(cfg) -> None:
    """ConfigError for settings that run but make no sense as a time-frequency analysis."""
    t = cfg.transform
    if t.name not in ("stft", "mel", "mfcc"):
        return
    win = t.win_length or t.n_fft
    if t.hop_length > win:
        raise ConfigError(f"hop_length ({t.hop_length}) is longer than the analysis window "
                          f"({win} samples): samples between frames would be skipped")
    if cfg.window.window_length < t.n_fft:
        raise ConfigError(f"the window ({cfg.window.window_length} samples) is shorter than "
                          f"n_fft ({t.n_fft}): every frame would be mostly padding")


def plan(jobs: list[Job], axes: dict[str, list], grid: str) -> list[Cell]:
    """Every (approach, setting) cell once: settings that differ only in parameters the
    approach does not use are one cell; invalid ones carry their reason."""
    cells, seen = [], set()
    for job in jobs:
        for raw in raw_settings(axes, grid):
            setting = {name: raw.get(name, base_value(job, name)) for name in axes
                       if applies(job, name)}
            key = setting_key(setting)
            if (job.transform, job.model, key) in seen:
                continue
            seen.add((job.transform, job.model, key))
            base = {name: base_value(job, name) for name in setting}
            cell = Cell(with_setting(job, setting), setting, key, base)
            try:
                check_setting(cell.job)
            except ConfigError as e:
                cell.skipped = str(e)
            cells.append(cell)
    return cells


NOT_RUN = "not run yet (report only: run the sweep without --report-only to train it)"


def is_finished(cell: Cell, repeats: int) -> bool:
    """Whether every fold of every repeat of the cell's run is trained and tested."""
    from pipeline.experiments.crossval import fold_dir
    from pipeline.experiments.repeats import repeat_dir, seeds_for
    from pipeline.experiments.run_dir import RunDir

    seeds = seeds_for(cell.job.cfg, cell.job.train, repeats)
    return all(RunDir(fold_dir(repeat_dir(cell.run_dir, r), i)).is_evaluated()
               for r in range(len(seeds)) for i in range(cell.job.cfg.dataset.folds))


def run_cells(cells: list[Cell], report_dir: Path, *, repeats: int = 1, verbose: int = 0,
              report_only: bool = False) -> list[Cell]:
    """Cross-validate every runnable cell (finished runs reused); a cell that turns out not to
    run (no window fits, a split without songs) is skipped with the reason, not a crash.
    ``report_only``: read the finished cells, train nothing (the others: ``NOT_RUN``)."""
    from tqdm.auto import tqdm

    from pipeline.experiments.repeats import cross_validate_repeats

    bar = tqdm(cells, desc="sweep", unit="setting", file=sys.stdout)
    for cell in bar:
        if cell.skipped:
            continue
        bar.set_postfix_str(f"{cell.approach} {cell.key}")
        cell.run_dir = (Path(report_dir) / "runs" / f"{cell.job.transform}_{cell.job.model}"
                        / cell.key)
        if report_only and not is_finished(cell, repeats):
            cell.skipped, cell.run_dir = NOT_RUN, None
            continue
        try:
            cell.summary = cross_validate_repeats(cell.job.cfg, cell.job.train, cell.run_dir,
                                                  repeats=repeats, verbose=verbose)
        except RunDirError:
            raise  # another configuration in that folder: the user must choose, not skip
        except (ConfigError, EmptySplitError) as e:
            cell.skipped = str(e)
    return cells


def resolution(cfg) -> dict[str, Any]:
    """Time and frequency resolution of a pipeline config, in the units people read:
    ms per frame (hop / sr), analysis window in ms (win / sr), Hz per FFT bin (sr / n_fft),
    mel bands, MFCC, frames per window; None where the transform has no such thing."""
    from core import musicnn_input

    t, sr = cfg.transform, cfg.window.sample_rate
    out = {"sample_rate": sr, "window_s": cfg.window.window_seconds,
           "step_s": cfg.window.step_seconds, "ms_per_frame": None, "window_ms": None,
           "hz_per_bin": None, "mel_bands": None, "mfcc": None, "frames": None}
    if t.name == "musicnn":
        n_fft, hop, win = musicnn_input.N_FFT, musicnn_input.HOP_LENGTH, musicnn_input.N_FFT
        out.update(mel_bands=musicnn_input.N_MELS, frames=musicnn_input.PATCH_FRAMES)
    else:
        n_fft, hop, win = t.n_fft, t.hop_length, t.win_length or t.n_fft
    if t.name not in ("stft", "mel", "mfcc", "musicnn") or min(n_fft, hop, win) <= 0:
        return out
    if t.name != "musicnn":
        out["frames"] = 1 + cfg.window.window_length // hop if t.center else (
            1 + (cfg.window.window_length - n_fft) // hop)
        out["mel_bands"] = t.n_mels if t.name in ("mel", "mfcc") else None
        out["mfcc"] = t.n_mfcc if t.name == "mfcc" else None
    out.update(ms_per_frame=1000 * hop / sr, window_ms=1000 * win / sr, hz_per_bin=sr / n_fft)
    return out
