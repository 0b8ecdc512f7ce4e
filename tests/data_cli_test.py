"""`--mode=train` on bad npz data as a user runs it: one line on stderr naming the file and problem, exit 2."""

import numpy as np
import pytest

from tests.cli_helpers import assert_one_line_error, swtf_cli
from tests.data_test import TEST, TRAIN, with_label, write_npz


def write_garbage(path):
    path.write_bytes(b"PK\x03\x04 truncated zip")
    return path


@pytest.mark.parametrize("make_npz,fragment", [
    (lambda path: write_npz(path, y_train=with_label(TRAIN, 17, 100000)),
     "train label 100000 at index 17 is outside 0..9"),
    (write_garbage, "is not a readable .npz archive"),
    (lambda path: write_npz(path, x_train=np.zeros((0, 5, 5), np.uint8), y_train=np.zeros(0, np.int64)),
     "train images are empty"),
    (lambda path: write_npz(path, y_test=with_label(TEST, 5, 10)), "test label 10 at index 5 has no training example"),
], ids=["label_out_of_range", "garbage_file", "empty_train_split", "test_class_absent_from_training"])
def test_bad_npz_data_is_one_line_and_exit_code_2(tmp_path, make_npz, fragment):
    path = make_npz(tmp_path / "bad.npz")
    result = swtf_cli("--mode=train", f"--dataset=npz:{path}", "--epochs=1", f"--run_dir={tmp_path / 'run'}")
    assert_one_line_error(result, f"npz:{path}")
    assert fragment in result.stderr
