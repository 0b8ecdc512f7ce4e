"""`python -m swtf.main` / `swtf`: parses flags, validates them into a `Config`, runs the mode.

No logic lives here. Bad input of any kind ends with one line on stderr and exit code 2.
"""

import contextlib
import dataclasses
import os
import sys

from absl import app, flags, logging

from swtf import cli_flags, io
from swtf.errors import SwtfError

FLAGS = flags.FLAGS
EXIT_BAD_INPUT = 2


@contextlib.contextmanager
def _native_stderr_silenced():
    """TensorFlow's C++ start-up lines (CPU features, no CUDA driver) ignore TF_CPP_MIN_LOG_LEVEL: hide them."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """Loads TensorFlow (several seconds) with its C++ start-up lines hidden; only after flags were checked."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.get_logger().setLevel("ERROR")


def fail(message):
    """Prints one line naming the problem and exits with code 2."""
    print(f"swtf: error: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def parse_flags(argv):
    """absl's parser, but a malformed flag or flagfile is one line and exit 2, not a usage dump."""
    try:
        cli_flags.check_command_line(argv)
        rest = FLAGS(argv)
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
    logging.set_verbosity(logging.WARNING)
    import_tensorflow()
    from swtf import config as config_lib
    from swtf import modes

    try:
        config = config_lib.config_from_flags(FLAGS)
        module = modes.module_for(config.mode, modes.import_available())
        if hasattr(module, "options_from_flags"):
            config = dataclasses.replace(config, options=module.options_from_flags(FLAGS))
        save_effective_flags(config)
        module.run(config)
    except SwtfError as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    except KeyboardInterrupt:
        print("swtf: interrupted; finished stages are kept and a rerun resumes", file=sys.stderr)
        sys.exit(130)


def run():
    """Console-script entry point."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
