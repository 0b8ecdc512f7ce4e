"""The factors study's sweep: which students, trained how, with which seeds.

Sweep syntax (`--sweep`): families separated by `;`, each `family[:key=v1,v2,...]...`. The values of one
key are alternatives; the keys of one family are crossed (every combination). Within a value, `-` joins
the entries of a tuple and `none` is the empty tuple:

    snn:width=32,128;scnn2:filters=8-16,32-64:dense=none,64

is 2 `snn` students (width 32, 128) and 4 `scnn2` students (filters (8, 16) or (32, 64), each with no
hidden dense layer or one of 64). Each student is trained by every method, every temperature of the
temperature methods, and every seed: one `SweepMember` each.
"""

import dataclasses
import itertools

from swtf.distill.trainer import METHODS, TEMPERATURE_METHODS
from swtf.errors import SwtfError

STUDENT_FAMILIES = ("snn", "scnn1", "scnn2", "shallow_cnn")


@dataclasses.dataclass(frozen=True)
class SweepMember:
    """One student to train: architecture and hyper-parameters, method, temperature (or None), seed."""

    architecture: str
    hparams: tuple  # sorted (key, value) pairs, so members are hashable and print the same way each run
    method: str
    temperature: float | None
    seed: int

    @property
    def student(self):
        """The student's name in the sweep syntax, e.g. "scnn2:filters=8-16"."""
        return student_label(self.architecture, self.hparams)


def student_label(architecture, hparams):
    return ":".join([architecture] + [f"{k}={_format_value(v)}" for k, v in hparams])


def _format_value(value):
    if isinstance(value, tuple):
        return "-".join(str(v) for v in value) if value else "none"
    return str(value)


def _parse_number(text, where):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise SwtfError(f"sweep value {text!r} in {where!r} is not a number; write numbers, a-b for tuples, "
                        f"none for no layers") from None


def _parse_value(text, where):
    if text == "none":
        return ()
    if "-" in text:
        return tuple(_parse_number(part, where) for part in text.split("-"))
    return _parse_number(text, where)


def parse_sweep(text):
    """Parses the sweep syntax into a list of `(architecture, hparams)` students, `hparams` sorted pairs."""
    students = []
    for family_text in filter(None, (part.strip() for part in text.split(";"))):
        architecture, *axes = family_text.split(":")
        if architecture not in STUDENT_FAMILIES:
            raise SwtfError(f"sweep family {architecture!r} is not a student; choose from "
                            f"{', '.join(STUDENT_FAMILIES)} (e.g. --sweep=snn:width=32,128)")
        keys, alternatives = [], []
        for axis in axes:
            key, sep, values = axis.partition("=")
            if not sep or not key or not values or key in keys:
                raise SwtfError(f"sweep axis {axis!r} of {architecture} must be a new key=v1,v2 "
                                f"(e.g. {architecture}:width=32,128)")
            keys.append(key)
            alternatives.append([_parse_value(v, family_text) for v in values.split(",")])
        for combination in itertools.product(*alternatives):
            students.append((architecture, tuple(sorted(zip(keys, combination)))))
    if not students:
        raise SwtfError("the sweep names no student; e.g. --sweep=snn:width=32,128;scnn2:filters=8-16")
    return students


def expand_sweep(students, methods, temperatures, seeds):
    """Every (student, method, temperature, seed) to train; temperatures only apply to temperature methods."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SwtfError(f"sweep methods {methods} must be among {', '.join(METHODS)}")
    if any(m in TEMPERATURE_METHODS for m in methods) and not temperatures:
        raise SwtfError("temperature methods need at least one temperature; pass --temperatures=1,2,4")
    return [SweepMember(architecture, hparams, method, temperature, seed)
            for architecture, hparams in students
            for seed in seeds
            for method in methods
            for temperature in (temperatures if method in TEMPERATURE_METHODS else [None])]
