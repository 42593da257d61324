"""The one way a binary ends: `run(main, name)` turns errors into one line and an exit status.

* `autogan_tf.errors.AutoGANError` (bad input, a run that cannot go on): `<name>: error: <msg>`
  on stderr, exit status 1;
* `absl.app.UsageError` (flags that do not fit together): `<name>: usage error: <msg>`, exit 2,
  without absl's pages of flag help (`--help` shows them);
* `OSError` (read-only or full disk, a file where a directory belongs): the operation, the path
  and the reason in one line, exit 1.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from typing import Callable

from absl import app

from autogan_tf.errors import AutoGANError

__all__ = ["run", "describe_os_error"]

_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and run the same command again to resume",
    errno.EROFS: "the file system is read-only; choose a writable directory",
    errno.EACCES: "permission denied; choose a directory you can write to",
    errno.EPERM: "permission denied; choose a directory you can write to",
    errno.ENOTDIR: "a file stands where a directory is needed; move it or choose another path",
    errno.EISDIR: "a directory stands where a file is needed; choose another path",
    errno.EEXIST: "a file stands where a directory is needed; move it or choose another path",
}


def describe_os_error(err: OSError) -> str:
    """One line: what failed on which path, and what to do."""
    path = err.filename or ""
    reason = err.strerror or str(err)
    hint = _OS_HINTS.get(err.errno)
    text = f"{path}: {reason}" if path else reason
    return f"{text} ({hint})" if hint else text


def _fail(name: str, message: str, status: int) -> None:
    sys.stdout.flush()
    print(f"{name}: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def run(main: Callable, name: str) -> None:
    """`absl.app.run(main)` with the project's error handling (see the module docstring)."""

    def guarded(argv):
        try:
            return main(argv)
        except app.UsageError as e:
            _fail(name, f"usage error: {e} (see --help)", 2)
        except AutoGANError as e:
            _fail(name, f"error: {e}", 1)
        except OSError as e:
            _fail(name, f"error: {describe_os_error(e)}", 1)

    app.run(guarded)
