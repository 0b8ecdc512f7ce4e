"""Usage: swtf [--mode=MODE] [--flag=value ...] [--flagfile=FILE]   (or: python -m swtf.main ...)

Distils deep Keras teachers into shallow students, prunes, attacks and certifies them. Every artifact of
a run goes to --run_dir (default runs/<dataset>); --dataset picks the data (default: embedded digits).

Modes:
  study     (default) the whole study: teacher, robust teacher, distilled students, pruning, attacks,
            certification, report; finished stages are cached and a rerun resumes
  train     trains --model (a zoo architecture, --hparams as JSON) and saves it into the run
  distill   trains students from the run's teacher; --temperatures ranges T, --sweep runs a factors study
  search    keras-tuner search over student architectures with the distillation loss
  prune     L1 filter pruning of a student, one-shot or on a schedule, fine-tuned by distillation
  attack    accuracy under PGD/APGD/FGSM/BIM/MIM over an eps grid for every model of the run
  certify   certified radii (IBP, CROWN, CROWN-IBP, alpha-CROWN) and certified accuracy at --eps
  report    the HTML + Markdown report, plots and metrics.json from a run's artifacts
  export    a trained model as a SavedModel (signature serving_default: images -> logits) or ONNX
  verify    decides VNN-LIB properties of ONNX networks, VNN-COMP style

Examples:
  swtf                                                  the digits study
  swtf --mode=train --model=convex_cnn --epochs=20 --run_dir=runs/try
  swtf --mode=certify --run_dir=runs/try --eps=0.05 --method=crown --num_points=200
  swtf --mode=export --run_dir=runs/try --export_model=teacher

Long steps show a progress bar on a terminal and one line per step otherwise; --quiet silences them.
Bad input ends with one line on stderr and exit code 2.
"""

import dataclasses
import os
import sys

from absl import app, flags, logging

from swtf import cli_flags, io
from swtf.errors import SwtfError, first_line

FLAGS = flags.FLAGS
EXIT_BAD_INPUT = 2


def import_tensorflow():
    """Loads TensorFlow (several seconds; its C++ start-up lines hidden by `swtf`'s import hook) only after the
    flags were checked."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def fail(message):
    """Prints one line naming the problem and exits with code 2."""
    print(f"swtf: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def parse_flags(argv):
    """absl's parser, but a malformed flag or flagfile is one line and exit 2, not a usage dump."""
    try:
        cli_flags.check_command_line(argv)
        rest = FLAGS(argv)
        cli_flags.check_values(FLAGS)
    except SwtfError as err:
        fail(str(err))
    except flags.Error as err:
        fail(f"{str(err).splitlines()[0]} (see --helpfull)")
    except SystemExit:  # absl prints --help/--helpfull and exits 1; asking for help is not an error
        sys.exit(0 if any(arg.lstrip("-").startswith("help") for arg in argv[1:]) else 1)
    if len(rest) > 1:
        fail(f"unexpected arguments {' '.join(rest[1:])}; flags look like --name=value")
    return rest


def save_effective_flags(config):
    """Keeps the flags that produced the run's artifacts, as a flagfile that reproduces the command."""
    lines = sorted({flag.serialize() for module, module_flags in FLAGS.flags_by_module_dict().items()
                    if "swtf" in module for flag in module_flags if flag.value is not None})
    io.write_text(os.path.join(config.run_dir, f"flags_{config.mode}.cfg"),
                  f"# Effective flags of swtf --mode={config.mode}; rerun with --flagfile=THIS_FILE\n"
                  + "\n".join(lines) + "\n")


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)  # libraries' warnings (tensorflow-datasets, keras-tuner) off stderr
    tf = import_tensorflow()
    from swtf import config as config_lib
    from swtf import modes

    try:
        config = config_lib.config_from_flags(FLAGS)
        module = modes.module_for(config.mode, modes.import_available())
        if hasattr(module, "options_from_flags"):
            config = dataclasses.replace(config, options=module.options_from_flags(FLAGS))
        modes.check_run_exists(config)
        save_effective_flags(config)
        module.run(config)
    except SwtfError as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    except OSError as err:  # a write outside swtf.io (a library's log or cache file): still one line
        fail(io.os_error_message(err, action="access"))
    except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as err:
        # TensorFlow's own writers (TensorBoard events, SavedModels) report a full disk or a read-only folder so
        fail(f"TensorFlow could not go on: {first_line(err.message or err)}; free disk "
             f"space (or memory) or choose a writable --run_dir, and rerun: finished artifacts are kept")
    except KeyboardInterrupt:
        print("swtf: interrupted; finished stages are kept and a rerun resumes", file=sys.stderr)
        sys.exit(130)


def run():
    """Console-script entry point."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
