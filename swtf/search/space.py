"""The search space over zoo students: a family, then that family's own widths and depths.

Each family's hyper-parameters live in a conditional scope of "family", so the tuner only varies (and
the Bayesian optimiser only models) the ones of the family it chose. Widths are sampled on a log scale:
a student twice as wide matters as much at 8 filters as at 64.
"""

from swtf.distill.sweep import STUDENT_FAMILIES
from swtf.errors import SwtfError


def _snn(hp):
    return {"width": hp.Int("snn_width", 8, 512, sampling="log")}


def _dense(hp, family):
    """No hidden dense layer (0) or one of 32..256 units."""
    units = hp.Choice(f"{family}_dense", [0, 32, 64, 128, 256])
    return (units,) if units else ()


def _scnn1(hp):
    return {"filters": hp.Int("scnn1_filters", 4, 128, sampling="log"), "dense": _dense(hp, "scnn1")}


def _scnn2(hp):
    filters = (hp.Int("scnn2_filters1", 4, 64, sampling="log"), hp.Int("scnn2_filters2", 4, 128, sampling="log"))
    return {"filters": filters, "dense": _dense(hp, "scnn2")}


def _shallow_cnn(hp):
    convolutions = hp.Int("shallow_cnn_convolutions", 1, 2)
    filters = (hp.Int("shallow_cnn_filters1", 4, 64, sampling="log"),)
    if convolutions == 2:
        with hp.conditional_scope("shallow_cnn_convolutions", [2]):
            filters += (hp.Int("shallow_cnn_filters2", 4, 64, sampling="log"),)
    return {"filters": filters, "kernel_size": hp.Choice("shallow_cnn_kernel_size", [3, 4, 5]),
            "dense": (hp.Int("shallow_cnn_dense", 16, 256, sampling="log"),)}


FAMILY_SPACES = {"snn": _snn, "scnn1": _scnn1, "scnn2": _scnn2, "shallow_cnn": _shallow_cnn}


def check_families(families):
    unknown = [f for f in families if f not in STUDENT_FAMILIES]
    if unknown or not families:
        raise SwtfError(f"search families {list(families)} must be among {', '.join(STUDENT_FAMILIES)}")
    return tuple(families)


def sample_student(hp, families):
    """Declares (or reads) the student hyper-parameters in `hp`; returns `(architecture, hparams)`."""
    family = hp.Choice("family", list(families))
    with hp.conditional_scope("family", [family]):
        return family, FAMILY_SPACES[family](hp)
