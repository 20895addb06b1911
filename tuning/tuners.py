"""keras_tuner's tuners, made safe to kill and resume, and to share between processes.

keras_tuner 1.4.8 already reloads a project (``overwrite=False``), but its resume has gaps that
lose or repeat work (see its issues on reloading RUNNING trials):

1. The project is reloaded only when ``<project>/<tuner_id>.json`` exists, a file written at the
   end of the first trial (and named after the tuner id: ``tuner0`` alone, ``chief`` when
   distributed).  A kill between the oracle's and the tuner's save, or a switch to distributed
   mode, starts a fresh oracle that numbers trials from 0 again and overwrites finished ones.
   Here the oracle is reloaded whenever ``oracle.json`` exists.
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
   become failed trials (three failures in a row would stop keras_tuner's search).

Every trial start and end is appended to ``<project>/trial_events.jsonl`` (trial id, tuner id,
pid, status; an end a kill kept from the log is added with ``recovered`` on resume); the tests use it to check that no trial ran twice, and it shows which worker ran
what in a distributed search.

Distributed mode is keras_tuner's own (KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT; see
`tuning.distributed`); the chief serves the oracle with `tuning.roles.serve_oracle`
(keras_tuner's server, polled every second instead of every 20 s for its exit).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Optional

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from core.files import write_json_atomic
from tuning import TUNERS
from tuning.roles import is_chief, is_worker, serve_oracle

EVENTS_FILE = "trial_events.jsonl"
COMPLETED = trial_module.TrialStatus.COMPLETED
RUNNING = trial_module.TrialStatus.RUNNING
FAILED = trial_module.TrialStatus.FAILED


def _is_local(path: str) -> bool:
    return "://" not in str(path)


# --------------------------------------------------------------------------------------------
# oracles
class ResumableOracleMixin:
    """Atomic state files, a repairing reload and valid-only sampling for any keras_tuner Oracle."""

    #: values -> bool; set by `make_tuner` to the hypermodel's `is_valid`.
    values_filter: Optional[Callable[[dict], bool]] = None
    #: how many random draws to try for one valid, new combination
    max_invalid_draws = 200

    # --- atomic files ------------------------------------------------------------------------
    def save(self):
        if _is_local(self._get_oracle_fname()):
            write_json_atomic(Path(self._get_oracle_fname()), self.get_state())
        else:  # pragma: no cover (cloud storage: keras_tuner's own writer)
            super().save()

    def _save_trial(self, trial):
        fname = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        if _is_local(fname):
            write_json_atomic(Path(fname), trial.get_state())
        else:  # pragma: no cover
            super()._save_trial(trial)

    # --- reload and repair -------------------------------------------------------------------
    def reload(self):
        ongoing_before = None
        try:
            state = json.loads(Path(self._get_oracle_fname()).read_text())
            ongoing_before = set(state.get("ongoing_trials", {}).values())
        except (OSError, ValueError):
            pass
        super().reload()  # loads trial_*/trial.json and oracle.json; ongoing -> retry queue
        self.repairs = self._repair(ongoing_before or set())
        if self.repairs:
            self.save()

    def _repair(self, ongoing_before: set) -> list[str]:
        repairs = []
        recorded = set(self.start_order)
        for trial_id in list(self.trials):
            if trial_id not in recorded:  # created on disk, never recorded by the oracle
                self.trials.pop(trial_id)
                fname = os.path.join(self._get_trial_dir(trial_id), "trial.json")
                if os.path.exists(fname):
                    os.replace(fname, fname + ".unrecorded")
                repairs.append(f"trial {trial_id}: never recorded by the oracle, id given again")
        for trial_id in list(self._retry_queue):
            trial = self.trials.get(trial_id)
            if trial is None or trial_id not in ongoing_before:
                continue  # a retry keras_tuner queued itself (INVALID trial with retries left)
            if trial.status != COMPLETED and trial.metrics.exists(self.objective.name):
                trial.status = COMPLETED  # reported its metrics, killed before it was ended
                self.score_trial(trial)
                self._save_trial(trial)
            if trial.status in (COMPLETED, FAILED):
                self._retry_queue.remove(trial_id)
                if trial_id not in self.end_order:
                    self.end_order.append(trial_id)
                self._run_times[trial_id] = max(self._run_times[trial_id], 1)
                repairs.append(f"trial {trial_id}: already {trial.status}, kept (not run again)")
            else:
                repairs.append(f"trial {trial_id}: interrupted while running, will run again")
        return repairs

    # --- sampling only valid combinations ----------------------------------------------------
    def _valid(self, values) -> bool:
        return values is None or self.values_filter is None or self.values_filter(values)

    def _random_values(self):
        """keras_tuner's random draw (no duplicates), redrawn until the combination is valid."""
        for _ in range(self.max_invalid_draws):
            values = super()._random_values()
            if self._valid(values):
                return values
            self._tried_so_far.add(self._compute_values_hash(values))  # never drawn again
        return None

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        values = response.get("values")
        if response.get("status") == RUNNING and values is not None and (
            not self._valid(values) or self._duplicate(values)
        ):
            # e.g. a Bayesian optimum outside the valid region: take a valid random draw.
            values = self._random_values()
            if values is None:
                return {"status": trial_module.TrialStatus.STOPPED, "values": None}
            response = dict(response, values=values)
        return response


class RandomOracle(ResumableOracleMixin, keras_tuner.oracles.RandomSearchOracle):
    pass


class BayesianOracle(ResumableOracleMixin, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class HyperbandOracle(ResumableOracleMixin, keras_tuner.oracles.HyperbandOracle):
    """Hyperband caps at ``max_trials`` too (keras_tuner's own Hyperband has no cap)."""

    def __init__(self, *args, max_trials=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_trials = max_trials

    def populate_space(self, trial_id):
        # Hyperband's new values all come from _random_values (filtered); continuations reuse
        # a finished trial's values, so no re-draw here (it would desync the brackets).
        return keras_tuner.oracles.HyperbandOracle.populate_space(self, trial_id)


# --------------------------------------------------------------------------------------------
# tuners
class ResumableTunerMixin:
    """Reload whenever the oracle has state; atomic tuner file; trial events; idle back-off."""

    def __init__(self, *args, overwrite=False, **kwargs):
        self._overwrite = overwrite
        self._idle_polls = 0
        super().__init__(*args, overwrite=overwrite, **kwargs)

    def _populate_initial_space(self):
        # keras_tuner reloads only if <tuner_id>.json exists; reload from oracle.json too.
        oracle_file = os.path.join(self.project_dir, "oracle.json")
        if not self._overwrite and not is_worker() and os.path.exists(oracle_file):
            print(f"Reloading Oracle from {oracle_file}")
            self.oracle.reload()
        super()._populate_initial_space()

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
        fname = self._get_tuner_fname()
        if _is_local(fname):
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
            serve_oracle(self.oracle)  # blocks until every worker was told to stop
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
        self._overwrite = overwrite
        self._idle_polls = 0
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel,
                                   overwrite=overwrite, **kwargs)


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
    """A resumable tuner of `kind` ("hyperband", "bayesian" or "random") over `hypermodel`."""
    common = dict(objective=objective, seed=seed)
    if kind == "random":
        oracle = RandomOracle(max_trials=max_trials, **common)
    elif kind == "bayesian":
        oracle = BayesianOracle(max_trials=max_trials, num_initial_points=num_initial_points, **common)
    elif kind == "hyperband":
        oracle = HyperbandOracle(max_epochs=epochs, factor=hyperband_factor,
                                 hyperband_iterations=hyperband_iterations,
                                 max_trials=max_trials, **common)
    else:
        raise ValueError(f"unknown tuner {kind!r}; valid: {', '.join(TUNERS)}")
    oracle.values_filter = getattr(hypermodel, "is_valid", None)
    cls = HyperbandTuner if kind == "hyperband" else SearchTuner
    return cls(oracle=oracle, hypermodel=hypermodel, directory=directory,
               project_name=project_name, overwrite=overwrite)
