"""`--mode=train`: trains one architecture of the zoo on the run's data set and saves it into the run."""

import dataclasses

from absl import flags

from swtf import models, runs, train
from swtf.errors import SwtfError

flags.DEFINE_string("model_name", "teacher", "Name under which the trained model is saved in the run.")

TRAINING_LOSSES = {"standard": train.cross_entropy_loss}


@dataclasses.dataclass(frozen=True)
class Options:
    model_name: str


def options_from_flags(fv):
    if not fv.model_name or not fv.model_name.replace("_", "").replace("-", "").isalnum():
        raise SwtfError(f"--model_name must be letters, digits, '_' or '-', got {fv.model_name!r}")
    return Options(model_name=fv.model_name)


def run(config):
    data = config.load_data()
    model = models.build(config.model, data.input_shape, data.num_classes, seed=config.seed, **config.hparams)
    name = config.options.model_name
    history = train.fit(model, (data.x_train, data.y_train), (data.x_val, data.y_val), options=config.train,
                        name=name, log_dir=runs.logs_dir(config.run_dir, name), quiet=config.quiet)
    metrics = {"val_accuracy": history.best_val_accuracy, "test_accuracy": train.accuracy(model, data.x_test,
                                                                                          data.y_test),
               "best_epoch": history.best_epoch, "epochs_run": len(history.epochs), "dataset": data.name,
               "seed": config.seed, "training": "standard"}
    record = runs.save_trained(config.run_dir, name, model, metrics)
    print(f"train: {name} ({config.model}, {record['params']:,} parameters) on {data.summary()}: "
          f"validation accuracy {metrics['val_accuracy']:.4f}, test accuracy {metrics['test_accuracy']:.4f} "
          f"-> {runs.model_path(config.run_dir, name)}")
