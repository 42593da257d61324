"""The one way a binary ends: `run(main, name)` turns errors into one line and an exit status.

* `autogan_tf.errors.AutoGANError` (bad input, a run that cannot go on): `<name>: error: <msg>`
  on stderr, exit status 1;
* usage errors (`absl.app.UsageError` from `main`, flags that do not parse or are out of
  range, and arguments that are not flags: no binary takes any): `<name>: usage error: <msg> (see --help)`, exit 2, without absl's pages of flag help
  (`--help` shows them);
* `OSError`, and TensorFlow's file errors (read-only or full disk, a file where a directory
  belongs): the operation, the path and the reason in one line, exit 1.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from typing import Callable

from absl import app, flags

from autogan_tf.errors import AutoGANError

__all__ = ["run", "describe_os_error", "describe_tf_io_error"]

_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and run the same command again to resume",
    errno.EDQUOT: "the disk quota is exhausted; free some space and run the same command again "
                  "to resume",
    errno.EROFS: "the file system is read-only; choose a writable directory",
    errno.EACCES: "permission denied; choose a directory you can write to",
    errno.EPERM: "permission denied; choose a directory you can write to",
    errno.ENOTDIR: "a file stands where a directory is needed; move it or choose another path",
    errno.EISDIR: "a directory stands where a file is needed; choose another path",
    errno.EEXIST: "a file stands where a directory is needed; move it or choose another path",
}

# TensorFlow's file system reports errno failures as OpErrors whose text holds strerror().
_TF_IO_REASONS = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
    "Permission denied": errno.EACCES,
    "Not a directory": errno.ENOTDIR,
    "Is a directory": errno.EISDIR,
}


def describe_os_error(err: OSError) -> str:
    """One line: what failed on which path, and what to do."""
    path = err.filename or ""
    reason = err.strerror or str(err)
    hint = _OS_HINTS.get(err.errno)
    text = f"{path}: {reason}" if path else reason
    return f"{text} ({hint})" if hint else text


def describe_tf_io_error(err: Exception):
    """One line for a TensorFlow file-system error (full or read-only disk, ...), else None."""
    if not type(err).__module__.startswith("tensorflow"):
        return None
    text = str(getattr(err, "message", "") or err)
    for reason, code in _TF_IO_REASONS.items():
        if reason in text:
            first = text.strip().splitlines()[0] if text.strip() else reason
            return f"{first[:300]} ({_OS_HINTS[code]})"
    return None


def _fail(name: str, message: str, status: int) -> None:
    sys.stdout.flush()
    print(f"{name}: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def _flags_parser(name: str):
    """absl's flag parsing, with a bad flag as one line that ends in the message."""

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            _fail(name, f"usage error: {e} (see --help)", 2)

    return parse


def run(main: Callable, name: str) -> None:
    """`absl.app.run(main)` with the project's error handling (see the module docstring)."""

    def guarded(argv):
        try:
            if len(argv) > 1:
                raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
            return main(argv)
        except app.UsageError as e:
            _fail(name, f"usage error: {e} (see --help)", 2)
        except AutoGANError as e:
            _fail(name, f"error: {e}", 1)
        except OSError as e:
            _fail(name, f"error: {describe_os_error(e)}", 1)
        except Exception as e:  # pylint: disable=broad-except
            line = describe_tf_io_error(e)
            if line is None:
                raise
            _fail(name, f"error: {line}", 1)

    app.run(guarded, flags_parser=_flags_parser(name))
