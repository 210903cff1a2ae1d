"""Atomic file writes: a file is either its old complete self or its new complete self, never half written.

Write to a temporary file in the same folder, flush and fsync it, then ``os.replace`` it over the target (atomic on
POSIX and Windows within one file system) and fsync the folder. A process killed at any moment leaves at most a
stray ``.<name>.tmp-<pid>`` file, which :func:`remove_stale_temporaries` cleans up.

:class:`AtomicLocalBackend` is mmengine's local file backend with atomic ``put`` / ``put_text``: the storage
behind :class:`~mmswin.engine.hooks.AtomicCheckpointHook`. :func:`mmswin.engine.setup_runtime` registers it in
``mmengine.fileio`` as ``'mmswin_atomic_local'``, reached with ``backend_args=dict(backend=ATOMIC_BACKEND)``
(mmengine's own ``'local'`` backend is left untouched). A write that fails (a full disk: ``OSError``) removes its
temporary file and leaves the target as it was.

Testing hook: with ``MMSWIN_ATOMIC_WRITE_PAUSE=SECONDS[:PATTERN]`` in the environment, each atomic write whose
target file name matches the glob ``PATTERN`` (default ``*``) prints ``mmswin-atomic-write: paused ...`` to stderr
and sleeps ``SECONDS`` after the temporary file is complete and before the rename, so a test can kill the process
exactly there.
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import re
import sys
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO

from mmengine.fileio.backends import LocalBackend

__all__ = ['ATOMIC_BACKEND', 'PAUSE_ENV', 'atomic_write_bytes', 'atomic_write_text', 'remove_stale_temporaries',
           'AtomicLocalBackend']

ATOMIC_BACKEND = 'mmswin_atomic_local'
PAUSE_ENV = 'MMSWIN_ATOMIC_WRITE_PAUSE'
_TMP_RE = re.compile(r'^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$')


def _pause_before_rename(tmp: str, target: str) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    seconds, _, pattern = spec.partition(':')
    if fnmatchcase(osp.basename(target), pattern or '*'):
        print(f'mmswin-atomic-write: paused {seconds}s before renaming {tmp} -> {target}', file=sys.stderr,
              flush=True)
        time.sleep(float(seconds))


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(f: BinaryIO, data: bytes) -> None:
    """The data write of :func:`atomic_write_bytes`: where a full disk (``ENOSPC``) shows (tests replace it)."""
    f.write(data)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename); creates the folder.

    Raises:
        OSError: the write, fsync or rename failed (e.g. ``ENOSPC``); the temporary file is removed and ``path`` is
            as it was.
    """
    target = os.fspath(path)
    folder = osp.dirname(osp.abspath(target))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(target)}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            _write_file(f, data)
            f.flush()
            os.fsync(f.fileno())
        _pause_before_rename(tmp, target)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files of atomic writes whose process no longer runs; returns their paths."""
    removed = []
    for entry in Path(folder).glob('.*.tmp-*'):
        match = _TMP_RE.match(entry.name)
        if not match or not entry.is_file() or _pid_alive(int(match['pid'])):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(str(entry))
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` replace the target atomically.

    ``remove`` calls can be deferred (:meth:`deferred_removals`) so that code written as "delete old, then write
    new" keeps the old file until the new one is complete.
    """

    def __init__(self) -> None:
        super().__init__()
        self._deferred: list[tuple[str, tuple[int, int]]] | None = None

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = 'utf-8') -> None:
        atomic_write_text(filepath, obj, encoding)

    def remove(self, filepath: str | Path) -> None:
        if self._deferred is None:
            return super().remove(filepath)
        path = os.fspath(filepath)
        if not osp.isfile(path):
            raise FileNotFoundError(path)
        stat = os.stat(path)
        self._deferred.append((path, (stat.st_ino, stat.st_mtime_ns)))

    @contextlib.contextmanager
    def deferred_removals(self) -> Iterator[None]:
        """Inside the block, ``remove`` only records; the files go after it succeeds, unless rewritten meanwhile.

        A file written again inside the block (same name, new content: a new inode after the atomic rename) is
        kept.
        """
        self._deferred = []
        try:
            yield
        except BaseException:  # the new file may be missing: keep the old ones
            self._deferred = None
            raise
        pending, self._deferred = self._deferred, None
        for path, identity in pending:
            with contextlib.suppress(FileNotFoundError):
                stat = os.stat(path)
                if (stat.st_ino, stat.st_mtime_ns) == identity:
                    super().remove(path)
