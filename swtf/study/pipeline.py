"""Runs a list of stages in order, skipping those already finished with the same settings.

Each stage reads artifacts of the stages it names in `reads` and writes its own; its key covers its
settings and its upstream keys, so changing a setting, or forcing a stage, recomputes it and everything
downstream, and nothing else.
"""

import dataclasses
import time

from swtf import runs
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
    """

    name: str
    reads: tuple
    settings: object
    run: object


@dataclasses.dataclass
class StageContext:
    """What a running stage sees: the config, the data, its key, and a resumable model cache."""

    config: object
    data: object
    key: str
    stage: str
    forced: bool = False

    def model(self, name, train_fn):
        """The run's model `name` if an earlier, interrupted attempt of this stage already trained it with
        the same key; otherwise `train_fn() -> (model, metrics)` trains it and it is saved with the key."""
        run_dir = self.config.run_dir
        if not self.forced and name in runs.list_trained(run_dir):
            model, record = runs.load_trained(run_dir, name)
            if record["metrics"].get("stage_key") == self.key:
                return model, record
        model, metrics = train_fn()
        record = runs.save_trained(run_dir, name, model, {**metrics, "stage_key": self.key, "stage": self.stage})
        return model, record


def _downstream(stages, forced):
    """The forced stage and every stage that reads it, directly or not."""
    names = {stage.name for stage in stages}
    if forced not in names:
        raise SwtfError(f"--force_stage={forced} is not a stage; stages are {', '.join(s.name for s in stages)}")
    marked = {forced}
    for stage in stages:
        if marked & set(stage.reads):
            marked.add(stage.name)
    return marked


def run_pipeline(stages, config, data, *, force_stage=None, log=None):
    """Runs `stages` in order; returns {stage name: key}."""
    log = log or (lambda line: print(line, flush=True))
    ledger = StageLedger(config.run_dir)
    forced = _downstream(stages, force_stage) if force_stage else set()
    keys = {}
    for stage in stages:
        missing = [name for name in stage.reads if name not in keys]
        if missing:
            raise SwtfError(f"stage {stage.name} reads {', '.join(missing)}, which must come before it")
        key = stage_key(stage.settings(config), [keys[name] for name in stage.reads])
        keys[stage.name] = key
        marker = ledger.finished(stage.name, key)
        if marker is not None and stage.name not in forced:
            log(f"study: {stage.name}: cached ({marker['summary']})")
            continue
        start = time.time()
        context = StageContext(config=config, data=data, key=key, stage=stage.name, forced=stage.name in forced)
        summary = stage.run(context)
        ledger.mark_finished(stage.name, key, summary, time.time() - start)
        log(f"study: {stage.name}: {summary} [{time.time() - start:.1f} s]")
    return keys
