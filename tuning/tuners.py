"""keras_tuner's tuners, made safe to kill and resume, and to share between processes.

keras_tuner 1.4.8 already reloads a project (``overwrite=False``), but its resume has gaps that
lose or repeat work (see its issues on reloading RUNNING trials):

1. The project is reloaded only when ``<project>/<tuner_id>.json`` exists, a file written at the
   end of the first trial (and named after the tuner id: ``tuner0`` alone, ``chief`` when
   distributed).  A kill between the oracle's and the tuner's save, or a switch to distributed
   mode, starts a fresh oracle that numbers trials from 0 again and overwrites finished ones.
   Here the oracle is reloaded whenever ``oracle.json`` exists (`make_tuner`).
2. ``oracle.json`` and ``trial_*/trial.json`` are written in place: a kill mid-write leaves a
   truncated file the next run cannot parse.  Here they are written atomically (temp + rename).
3. Trial and oracle files are written one after the other, so a kill in between leaves them
   inconsistent.  `ResumableOracleMixin.reload` repairs both windows:
   - a trial the oracle still lists as running but whose trial.json says COMPLETED (killed
     after the trial was saved, before the oracle was) is kept as finished, not re-run;
   - a trial that reported its metrics but was not ended yet is ended with them;
   - a trial.json the oracle never recorded (killed while creating it) is forgotten, so its id
     is given again instead of being skipped or run twice;
   - a trial that was really interrupted mid-run is run again under its own id (keras_tuner's
     retry queue, which does not count it as a failure).
4. Oracles sample only valid combinations (`SearchSpace.is_valid`), so invalid pipelines never
   become failed trials (three failures in a row would stop keras_tuner's search): a proposal
   that is invalid or was tried is replaced, in the public ``populate_space``, by a valid draw.

Every trial start and end is appended to ``<project>/trial_events.jsonl`` (trial id, tuner id,
pid, status; an end a kill kept from the log is added with ``recovered`` on resume); the tests use it to check that no trial ran twice, and it shows which worker ran
what in a distributed search.

Distributed mode is keras_tuner's own (KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT; see
`tuning.distributed`); the chief serves the oracle with `keras_tuner_compat.serve_oracle`.
What keras_tuner has no public form for (state file names, the retry queue, atomic trial
files, the chief's server) is in `tuning.keras_tuner_compat`, with the versions it supports.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path
from typing import Callable, Optional

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from core.files import write_json_atomic
from tuning import TUNERS
from tuning import keras_tuner_compat as compat
from tuning.roles import is_chief, is_worker, oracle_address

EVENTS_FILE = "trial_events.jsonl"
COMPLETED, RUNNING, FAILED = TrialStatus.COMPLETED, TrialStatus.RUNNING, TrialStatus.FAILED


# --------------------------------------------------------------------------------------------
# oracles
class ResumableOracleMixin(compat.AtomicStateFiles):
    """Atomic state files, a repairing reload and valid-only sampling for any keras_tuner Oracle."""

    #: values -> bool; set by `make_tuner` to the hypermodel's `is_valid`.
    values_filter: Optional[Callable[[dict], bool]] = None
    #: how many random draws to try for one valid, new combination
    max_invalid_draws = 200
    #: set by `reload` (the tuner reloads only when its own file exists; `make_tuner` then)
    reloaded = False

    # --- reload and repair -------------------------------------------------------------------
    def reload(self):
        ongoing_before = None
        try:
            state = json.loads(Path(compat.oracle_file(self)).read_text())
            ongoing_before = set(state.get("ongoing_trials", {}).values())
        except (OSError, ValueError):
            pass
        super().reload()  # loads trial_*/trial.json and oracle.json; ongoing -> retry queue
        self.reloaded = True
        self.repairs = self._repair(ongoing_before or set())
        if self.repairs:
            self.save()

    def _repair(self, ongoing_before: set) -> list[str]:
        repairs = self._forget_unrecorded()
        queue = compat.retry_queue(self)
        for trial_id in list(queue):
            trial = self.trials.get(trial_id)
            if trial is None or trial_id not in ongoing_before:
                continue  # a retry keras_tuner queued itself (INVALID trial with retries left)
            if trial.status != COMPLETED and trial.metrics.exists(self.objective.name):
                trial.status = COMPLETED  # reported its metrics, killed before it was ended
                self.score_trial(trial)
                compat.save_trial(self, trial)
            if trial.status in (COMPLETED, FAILED):
                queue.remove(trial_id)
                if trial_id not in self.end_order:
                    self.end_order.append(trial_id)
                compat.count_as_run(self, trial_id)
                repairs.append(f"trial {trial_id}: already {trial.status}, kept (not run again)")
            else:
                repairs.append(f"trial {trial_id}: interrupted while running, will run again")
        return repairs

    def _forget_unrecorded(self) -> list[str]:
        """A trial.json the oracle never recorded (killed while creating it): its id is given
        again instead of being skipped or run twice."""
        repairs = []
        recorded = set(self.start_order)
        for trial_id in list(self.trials):
            if trial_id not in recorded:
                self.trials.pop(trial_id)
                fname = compat.trial_file(self, trial_id)
                if os.path.exists(fname):
                    os.replace(fname, fname + ".unrecorded")
                repairs.append(f"trial {trial_id}: never recorded by the oracle, id given again")
        return repairs

    # --- sampling only valid combinations ----------------------------------------------------
    def _valid(self, values) -> bool:
        return self.values_filter is None or self.values_filter(values)

    def _tried(self, values: dict) -> bool:
        searched = _searched(values)
        return any(_searched(t.hyperparameters.values) == searched for t in self.trials.values())

    def valid_random_values(self, trial_id: str) -> Optional[dict]:
        """A random draw of the space (seeded by the oracle's seed and the trial id) that is
        valid and not tried yet; None after `max_invalid_draws` draws."""
        space = self.hyperparameters.space
        for attempt in range(self.max_invalid_draws):
            seed = zlib.crc32(f"{self.seed}:{trial_id}:{attempt}".encode())
            values = {hp.name: hp.random_sample(seed + i) for i, hp in enumerate(space)}
            if self._valid(values) and not self._tried(values):
                return values
        return None

    def populate_space(self, trial_id):
        """keras_tuner's proposal, replaced by a valid random draw where it is invalid or was
        tried (e.g. a Bayesian optimum outside the valid region)."""
        response = super().populate_space(trial_id)
        values = response.get("values")
        if response.get("status") != RUNNING or values is None or "tuner/trial_id" in values:
            return response  # stopped, idle, or a Hyperband continuation of a finished trial
        if self._valid(_searched(values)) and not self._tried(values):
            return response
        drawn = self.valid_random_values(trial_id)
        if drawn is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        tuner_keys = {k: v for k, v in values.items() if k.startswith("tuner/")}
        return dict(response, values={**drawn, **tuner_keys})


def _searched(values: dict) -> dict:
    """The hyperparameter values, without Hyperband's bookkeeping (tuner/epochs, ...)."""
    return {k: v for k, v in values.items() if not str(k).startswith("tuner/")}


class RandomOracle(ResumableOracleMixin, keras_tuner.oracles.RandomSearchOracle):
    pass


class BayesianOracle(ResumableOracleMixin, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class GridOracle(ResumableOracleMixin, keras_tuner.oracles.GridSearchOracle):
    """Every combination of the (discrete) space in turn, valid ones only."""


class HyperbandOracle(ResumableOracleMixin, keras_tuner.oracles.HyperbandOracle):
    """Hyperband caps at ``max_trials`` too (keras_tuner's own Hyperband has no cap)."""

    def __init__(self, *args, max_trials=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_trials = max_trials


# --------------------------------------------------------------------------------------------
# tuners
class ResumableTunerMixin:
    """Atomic tuner file; trial events; idle back-off; the chief serves the oracle."""

    def __init__(self, *args, **kwargs):
        self._idle_polls = 0
        super().__init__(*args, **kwargs)

    def resume(self, overwrite: bool) -> None:
        """keras_tuner reloads only if <tuner_id>.json exists; reload from oracle.json too
        (a kill before the tuner's first save, or a switch to distributed mode)."""
        oracle_json = os.path.join(self.project_dir, "oracle.json")
        if not overwrite and not is_worker() and not self.oracle.reloaded \
                and os.path.exists(oracle_json):
            print(f"Reloading Oracle from {oracle_json}")
            self.oracle.reload()

    def _log_unlogged_ends(self) -> None:
        """An "end" event (``recovered``) for each finished trial the log lacks one for: a kill
        after the oracle ended a trial but before `on_trial_end` logged it."""
        path = Path(self.project_dir) / EVENTS_FILE
        lines = path.read_text().splitlines() if path.exists() else []
        logged = {json.loads(line)["trial_id"] for line in lines
                  if line.strip() and json.loads(line)["event"] == "end"}
        for trial_id, trial in sorted(self.oracle.trials.items()):
            if trial_id not in logged and trial.status in (COMPLETED, FAILED):
                self._event(trial, "end", recovered=True)

    def save(self):
        if not is_worker():
            self.oracle.save()
        fname = compat.tuner_file(self)
        if "://" not in fname:
            write_json_atomic(Path(fname), self.get_state())
        else:  # pragma: no cover
            keras_tuner.engine.base_tuner.BaseTuner.save(self)

    def search(self, *fit_args, **fit_kwargs):
        if not is_worker():  # the oracle is here
            self._log_unlogged_ends()
        if is_chief():
            if "verbose" in fit_kwargs:
                self.oracle.verbose = fit_kwargs["verbose"]
            self.save()
            compat.serve_oracle(self.oracle, oracle_address())  # until every worker was told to stop
            return
        super().search(*fit_args, **fit_kwargs)

    # --- bookkeeping -------------------------------------------------------------------------
    def _event(self, trial, event: str, **extra) -> None:
        record = {"event": event, "trial_id": trial.trial_id, "tuner_id": self.tuner_id,
                  "pid": os.getpid(), "time": time.time(), "status": trial.status, **extra}
        if event == "end":
            try:
                record["score"] = self.oracle.get_trial(trial.trial_id).score
            except Exception:  # noqa: BLE001 (bookkeeping must never fail a trial)
                pass
        path = os.path.join(self.project_dir, EVENTS_FILE)
        with open(path, "a") as f:  # one short line per write: O_APPEND keeps lines whole
            f.write(json.dumps(record) + "\n")

    def pre_create_trial(self):
        # Two requests without a trial in between: the oracle answered IDLE (Hyperband waiting
        # for other workers' trials); back off instead of spinning on the chief.
        self._idle_polls += 1
        if self._idle_polls > 1:
            time.sleep(min(2.0, 0.2 * self._idle_polls))

    def on_trial_begin(self, trial):
        self._idle_polls = 0
        self._event(trial, "begin")
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # ends the trial in the oracle, saves
        self._event(trial, "end")


class SearchTuner(ResumableTunerMixin, keras_tuner.Tuner):
    """Random search and Bayesian optimisation (the oracle decides)."""


class HyperbandTuner(ResumableTunerMixin, keras_tuner.Hyperband):
    """keras_tuner's Hyperband trial logic (epochs per round, warm start from the previous
    round's checkpoint) on a resumable oracle."""

    def __init__(self, oracle, hypermodel, *, overwrite=False, **kwargs):
        # keras_tuner.Hyperband.__init__ makes its own oracle; go straight to Tuner.__init__.
        self._idle_polls = 0
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel,
                                   overwrite=overwrite, **kwargs)


def make_oracle(kind: str, objective, *, max_trials: int, seed: int, epochs: int = 1,
                hyperband_factor: int = 3, hyperband_iterations: int = 1,
                num_initial_points: Optional[int] = None):
    """A resumable oracle of `kind` ("random", "bayesian", "grid" or "hyperband")."""
    compat.check_version()
    common = dict(objective=objective, seed=seed)
    if kind == "random":
        return RandomOracle(max_trials=max_trials, **common)
    if kind == "bayesian":
        return BayesianOracle(max_trials=max_trials, num_initial_points=num_initial_points, **common)
    if kind == "grid":
        return GridOracle(max_trials=max_trials, **common)
    if kind == "hyperband":
        return HyperbandOracle(max_epochs=epochs, factor=hyperband_factor,
                               hyperband_iterations=hyperband_iterations,
                               max_trials=max_trials, **common)
    raise ValueError(f"unknown tuner {kind!r}; valid: {', '.join(TUNERS)}")


def make_tuner(
    kind: str,
    hypermodel,
    *,
    objective,
    max_trials: int,
    epochs: int,
    seed: int,
    directory: str,
    project_name: str,
    overwrite: bool = False,
    hyperband_factor: int = 3,
    hyperband_iterations: int = 1,
    num_initial_points: Optional[int] = None,
):
    """A resumable tuner of `kind` ("hyperband", "bayesian", "grid" or "random") over the Keras
    `hypermodel`."""
    oracle = make_oracle(kind, objective, max_trials=max_trials, seed=seed, epochs=epochs,
                         hyperband_factor=hyperband_factor,
                         hyperband_iterations=hyperband_iterations,
                         num_initial_points=num_initial_points)
    oracle.values_filter = getattr(hypermodel, "is_valid", None)
    cls = HyperbandTuner if kind == "hyperband" else SearchTuner
    tuner = cls(oracle=oracle, hypermodel=hypermodel, directory=directory,
                project_name=project_name, overwrite=overwrite)
    tuner.resume(overwrite)
    return tuner
