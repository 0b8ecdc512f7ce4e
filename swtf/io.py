"""Atomic writers: a file is either absent or complete, never half-written (write, fsync, rename).

An OS error while writing or reading an artifact (disk full, read-only or missing folder) is a one-line
`SwtfError` naming the path and the fix; the previous version of a file being replaced is left intact.
"""

import contextlib
import csv
import errno
import io
import json
import os
import tempfile

import numpy as np

from swtf.errors import SwtfError

TEMP_PREFIX = ".tmp-"  # unfinished files of the atomic writers; a killed process may leave one behind
_FREE_SPACE = "free space on that disk and rerun; finished artifacts are kept"
_FIXES = {errno.ENOSPC: _FREE_SPACE, errno.EDQUOT: _FREE_SPACE}


def is_temporary(name):
    """Whether file `name` is an atomic writer's temporary, never an artifact (listings must skip it)."""
    return os.path.basename(name).startswith(TEMP_PREFIX)


def os_error_message(err, path=None, action="write"):
    """One line for an OSError: what could not be done to which path, why, and how to fix it."""
    reason = err.strerror or str(err)
    fix = _FIXES.get(err.errno, "check that it exists and is readable" if action == "read" else
                     "choose a writable --run_dir")
    return f"cannot {action} {path or err.filename or 'a file'}: {reason}; {fix}"


@contextlib.contextmanager
def os_errors(path, action="write"):
    """Turns an OSError raised in the block into a one-line `SwtfError` about `path`."""
    try:
        yield
    except OSError as err:
        raise SwtfError(os_error_message(err, path, action)) from None


def make_dirs(path):
    """`os.makedirs(path, exist_ok=True)` with a one-line error (read-only parent, a file in the way)."""
    with os_errors(path):
        os.makedirs(path, exist_ok=True)
    return path


def _umask():
    """The process's umask (Python can only read it by setting it, so it is set and restored at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path in the target's folder; renames it onto `path` only if the block succeeds.

    The file is synced to disk before the rename and gets the mode of a plain `open` (0666 less the
    umask), not mkstemp's owner-only 0600, so other users of a shared run directory can read it.
    """
    folder = make_dirs(os.path.dirname(os.path.abspath(path)))
    suffix = "".join(os.path.basename(path).partition(".")[1:]) if "." in os.path.basename(path) else ""
    with os_errors(path):
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=suffix)
        os.close(handle)
    try:
        with os_errors(path):
            yield tmp
            _fsync(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(obj):
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=True)


def write_json(path, obj):
    write_text(path, to_json(obj) + "\n")


def read_json(path):
    """Reads a JSON artifact; a corrupt or truncated one is a one-line `SwtfError` naming the file."""
    with os_errors(path, action="read"):
        with open(path, "rb") as f:
            data = f.read()
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise SwtfError(f"{path} is corrupt or truncated (not valid JSON: {err}); delete it and rerun the command "
                        f"that wrote it") from None


def write_csv(path, rows, header):
    """Writes `rows` (sequences, or dicts keyed by `header`) as CSV with a header line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header] if isinstance(row, dict) else list(row))
    write_text(path, buffer.getvalue())
