"""Run directories that are never shared, silently mixed or lost: locks, resume checks, moves.

A process that writes a run directory (training, a search, each derived candidate, an export)
holds `<dir>/.lock` for as long as it writes. The lock file is created atomically (`O_EXCL`) and
holds the owner's pid, host and start time; a lock whose pid no longer runs on this host is
stale and taken over with a warning; a live one is a `RunDirError` that names the owner.

A resumed run compares the configuration it saved with the one it is given, field by field
(`check_resume`), and refuses naming every field that differs, before anything is written.
`--overwrite` moves the old state aside (`move_aside`, a rename: cheap, and nothing is lost)
only after every check has passed. `record_flags` keeps the flags a run was started with and
records those of each resume next to them, so `flags.txt` never claims settings a run did not
use. JSON state is written atomically (`write_json`): a kill or a full disk leaves the previous
file, never half of one.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
import uuid
from typing import Iterable, Mapping, Optional

from absl import logging

from autogan_tf.errors import ConfigError, RunDirError

__all__ = [
    "LOCK_FILE",
    "RunDirLock",
    "read_lock",
    "config_differences",
    "check_resume",
    "refuse_resume",
    "read_json",
    "write_json",
    "write_text",
    "move_aside",
    "record_flags",
]

LOCK_FILE = ".lock"
# A lock file that is empty or unreadable is being written by its creator, unless it is older.
_UNFINISHED_LOCK_GRACE_S = 10.0
_PROCESS_TOKEN = uuid.uuid4().hex  # marks the locks this process wrote
_HELD: dict = {}  # realpath of a locked directory -> how many holders in this process


def _host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user
    return True


def read_lock(directory: str) -> Optional[dict]:
    """The owner recorded in `<directory>/.lock`, {} if it cannot be read, None without one."""
    path = os.path.join(directory, LOCK_FILE)
    try:
        with open(path) as f:
            owner = json.load(f)
        return owner if isinstance(owner, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _is_stale(owner: dict, directory: str) -> bool:
    path = os.path.join(directory, LOCK_FILE)
    if not owner.get("pid") or not owner.get("host"):
        try:  # being written right now, or left half-written by a process that died
            return time.time() - os.path.getmtime(path) > _UNFINISHED_LOCK_GRACE_S
        except OSError:
            return True
    if owner.get("dir") and owner["dir"] != os.path.realpath(directory):
        return True  # copied along with a run directory: it locks the original
    if owner["host"] != _host():
        return False  # cannot tell whether a process on another machine still runs
    if int(owner["pid"]) == os.getpid():
        return os.path.realpath(directory) not in _HELD  # we know what we hold
    return not _pid_alive(int(owner["pid"]))


class RunDirLock:
    """`<directory>/.lock`, held while this process writes the directory.

    Locks are re-entrant within one process (two objects of one process may write one
    directory, as a resumed trainer in a test does), and exclusive between processes.

    Args:
      directory: the run directory; created if missing.
      what: what the directory holds, for messages ('training run', 'search', ...).

    Raises (on `acquire`):
      RunDirError: another live process holds the lock.
      OSError: the directory cannot be created or written (read-only, full, a file in its place).
    """

    def __init__(self, directory: str, what: str = "run"):
        self.directory = directory
        self.what = what
        self.path = os.path.join(directory, LOCK_FILE)
        self._key = None
        self._created_dir = False

    def acquire(self) -> "RunDirLock":
        if self._key is not None:
            return self
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory)
            self._created_dir = True
        key = os.path.realpath(self.directory)
        if _HELD.get(key):
            _HELD[key] += 1
            self._key = key
            return self
        owner = {"pid": os.getpid(), "host": _host(), "token": _PROCESS_TOKEN, "dir": key,
                 "started": datetime.datetime.now().isoformat(timespec="seconds")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(owner, f)
            except OSError:
                os.unlink(self.path)
                raise
            _HELD[key] = 1
            self._key = key
            return self
        raise RunDirError(f"cannot lock {self.directory}: its lock file {self.path} keeps "
                          "changing hands; is another process starting on it?")

    def _take_over_if_stale(self) -> None:
        owner = read_lock(self.directory)
        if owner is None:
            return  # released meanwhile: try again
        if not _is_stale(owner, self.directory):
            who = (f"process {owner.get('pid')} on {owner.get('host')} (since "
                   f"{owner.get('started', '?')})" if owner else "another process")
            raise RunDirError(
                f"{self.directory} is in use by {who}: one {self.what} directory takes one "
                "process at a time. Wait for it to finish, or use another --run_dir; if that "
                f"process no longer runs, delete {self.path}")
        if read_lock(self.directory) != owner:
            return  # someone else took it over meanwhile: look again
        logging.warning("Taking over the stale lock of %s (process %s on %s is gone)",
                        self.directory, owner.get("pid"), owner.get("host"))
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None:
            return
        _HELD[key] -= 1
        if _HELD[key] > 0:
            return
        del _HELD[key]
        owner = read_lock(self.directory)
        if owner and owner.get("token") == _PROCESS_TOKEN and owner.get("pid") == os.getpid():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        if self._created_dir:  # a run that never started leaves nothing behind
            try:
                os.rmdir(self.directory)
            except OSError:
                pass

    @property
    def held(self) -> bool:
        return self._key is not None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ----- resume checks ------------------------------------------------------------------------------
def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = list(v) if isinstance(v, tuple) else v
    return out


def config_differences(saved: Mapping, now: Mapping, ignore: Iterable[str] = (),
                       defaults: Optional[Mapping] = None) -> list:
    """The fields in which two configuration dicts differ, as (name, saved, now) tuples.

    Nested dicts are compared field by field under dotted names ('gan.g_lr').

    Args:
      saved: the configuration a run was started with (e.g. from its config.json).
      now: the configuration it is resumed with.
      ignore: dotted names of fields that do not change results (not compared).
      defaults: values of fields that older files lack; a field missing from `saved` and from
        `defaults` is not compared.
    """
    ignore = set(ignore)
    s, n = _flatten(saved), _flatten(now)
    d = _flatten(defaults or {})
    diffs = []
    for name, value in n.items():
        if name in ignore:
            continue
        if name in s:
            old = s[name]
        elif name in d:
            old = d[name]
        else:
            continue
        if old != value:
            diffs.append((name, old, value))
    return diffs


def refuse_resume(diffs: list, where: str, fix: str = "") -> None:
    """Raises ConfigError listing `diffs` (from `config_differences`), if there are any.

    Args:
      diffs: (name, saved, now) tuples.
      where: what is resumed, e.g. 'the training run in runs/x'.
      fix: more advice, appended to "Resume with the same configuration ...".
    """
    if diffs:
        fields = "; ".join(f"{name}: saved {old!r}, now {new!r}" for name, old, new in diffs)
        raise ConfigError(
            f"{where} was started with other settings ({fields}). Resume with the same "
            f"configuration (its flags.txt lists it){fix}, or use another --run_dir")


def check_resume(saved: Mapping, now: Mapping, where: str, ignore: Iterable[str] = (),
                 defaults: Optional[Mapping] = None, fix: str = "") -> None:
    """Refuses a resume whose configuration differs from the saved one in a compared field.

    Args: as `config_differences` and `refuse_resume`.

    Raises:
      ConfigError: listing each differing field as `name: saved X, now Y`.
    """
    refuse_resume(config_differences(saved, now, ignore, defaults), where, fix)


# ----- writing ------------------------------------------------------------------------------------
def write_text(path: str, text: str) -> str:
    """Writes a file atomically (a temporary file renamed over it); returns the path."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_json(path: str, error_cls=ConfigError, fix: str = "use another --run_dir"):
    """The JSON state at `path`, or None if there is none.

    Raises:
      error_cls: the file exists but cannot be read or parsed (naming it, and `fix`).
    """
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise error_cls(f"{path} is unreadable ({e}); restore it from a backup, or {fix}") from e


def write_json(path: str, obj, indent: Optional[int] = 1) -> str:
    """Writes `obj` as JSON atomically; returns the path."""
    return write_text(path, json.dumps(obj, indent=indent))


def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def move_aside(directory: str, keep: Iterable[str] = (LOCK_FILE,)) -> Optional[str]:
    """Moves what `directory` holds into a new sibling `<directory>.replaced-<time>`.

    A rename on the same file system: instant, and nothing is deleted. Entries in `keep` (the
    lock) stay.

    Returns:
      The new directory, or None if there was nothing to move.
    """
    keep = set(keep)
    entries = [e for e in sorted(os.listdir(directory)) if e not in keep]
    if not entries:
        return None
    base = os.path.normpath(directory) + ".replaced-" + _stamp()
    target, n = base, 1
    while os.path.exists(target):
        n += 1
        target = f"{base}-{n}"
    os.makedirs(target)
    for e in entries:
        os.rename(os.path.join(directory, e), os.path.join(target, e))
    logging.warning("Moved the previous contents of %s to %s", directory, target)
    return target


def record_flags(directory: str, flags_text: Optional[str], resumed: bool) -> Optional[str]:
    """Records a binary's resolved flags in its run directory; returns the file written.

    A new run writes `flags.txt`. A resume keeps it (it lists what the run was started with)
    and, when this start's flags differ, writes them to `flags.resumed-<time>.txt` beside it.
    """
    if flags_text is None:
        return None
    path = os.path.join(directory, "flags.txt")
    if resumed and os.path.exists(path):
        with open(path) as f:
            if f.read() == flags_text:
                return None
        path = os.path.join(directory, f"flags.resumed-{_stamp()}.txt")
    return write_text(path, flags_text)
