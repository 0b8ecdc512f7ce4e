"""Runs a list of stages in order, skipping those already finished with the same settings.

Each stage reads artifacts of the stages it names in `reads` and writes its own; its key covers its
settings, its upstream keys and the SHA-256 of the model files its upstream stages wrote, so changing a
setting, replacing or damaging such a model file, or forcing a stage, recomputes it and everything
downstream, and nothing else.
"""

import dataclasses
import time

from swtf import progress, runs
from swtf.errors import SwtfError
from swtf.study.ledger import StageLedger, stage_key


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of the study.

    Attributes:
      name: stage name, used for markers, `--force_stage` and summaries.
      reads: names of earlier stages whose artifacts this stage reads.
      settings: `settings(config) -> dict`, everything that changes what the stage produces.
      run: `run(context) -> str`, does the work and returns a one-line summary.
      group: the name `--force_stage` knows it by where several stages do one step (the study's stages of
        each training seed: `teacher`, `teacher-seed1`, ... are all `teacher`); default: `name`.
    """

    name: str
    reads: tuple
    settings: object
    run: object
    group: str = None


@dataclasses.dataclass
class StageContext:
    """What a running stage sees: the config, the data, its key, and a resumable model cache."""

    config: object
    data: object
    key: str
    stage: str
    forced: bool = False
    written: list = dataclasses.field(default_factory=list)  # names of the run's models this stage wrote

    def _cached(self, name):
        """(model, record) of `name` if an earlier, interrupted attempt of this stage trained it with the same
        key and its file still loads (a damaged file is retrained, not trusted); else None."""
        if self.forced or name not in runs.list_trained(self.config.run_dir):
            return None
        try:
            model, record = runs.load_trained(self.config.run_dir, name)
        except SwtfError:
            return None
        return (model, record) if record["metrics"].get("stage_key") == self.key else None

    def save(self, name, model, metrics):
        """Saves the run's model `name` tagged with this stage and its key; returns its record."""
        self.written.append(name)
        return runs.save_trained(self.config.run_dir, name, model,
                                 {**metrics, "stage_key": self.key, "stage": self.stage})

    def model(self, name, train_fn):
        """The run's model `name` if an earlier, interrupted attempt of this stage already trained it with
        the same key; otherwise `train_fn() -> (model, metrics)` trains it and it is saved with the key."""
        cached = self._cached(name)
        if cached is None:
            model, metrics = train_fn()
            return model, self.save(name, model, metrics)
        self.written.append(name)
        return cached


def _downstream(stages, forced):
    """The forced stage (every stage of its group) and every stage that reads it, directly or not."""
    marked = {stage.name for stage in stages if forced in (stage.name, stage.group)}
    if not marked:
        groups = dict.fromkeys(stage.group or stage.name for stage in stages)
        raise SwtfError(f"--force_stage={forced} is not a stage; stages are {', '.join(groups)}")
    for stage in stages:
        if marked & set(stage.reads):
            marked.add(stage.name)
    return marked


def run_pipeline(stages, config, data, *, force_stage=None, log=None):
    """Runs `stages` in order; returns {stage name: key}.

    On a terminal a bar counts the stages; each stage's one-line summary goes to `log` (default: stdout).
    """
    ledger = StageLedger(config.run_dir)
    forced = _downstream(stages, force_stage) if force_stage else set()
    keys, models = {}, {}  # models: {stage: {model name: SHA-256 of the file the stage wrote}}
    with progress.Progress("study", len(stages), unit="stage", quiet=config.quiet, lines=False) as bar:
        log = log or bar.write
        for stage in stages:
            missing = [name for name in stage.reads if name not in keys]
            if missing:
                raise SwtfError(f"stage {stage.name} reads {', '.join(missing)}, which must come before it")
            key = stage_key(stage.settings(config), [[keys[name], models[name]] for name in stage.reads])
            keys[stage.name] = key
            marker = ledger.finished(stage.name, key)
            if marker is not None and stage.name not in forced:
                models[stage.name] = marker.get("models", {})
                log(f"study: {stage.name}: cached ({marker['summary']})")
                bar.step(stage.name, "cached")
                continue
            start = time.time()
            context = StageContext(config=config, data=data, key=key, stage=stage.name, forced=stage.name in forced)
            summary = stage.run(context)
            seconds = time.time() - start
            models[stage.name] = ledger.model_digests(context.written)
            ledger.mark_finished(stage.name, key, summary, seconds, models[stage.name])
            log(f"study: {stage.name}: {summary} [{seconds:.1f} s]")
            bar.step(stage.name, f"{seconds:.1f} s")
    return keys
