"""File-system primitives shared by every stage: atomic replacement, content hashes, a per-folder lock.

One place for each, so that every file the toolkit writes (stores, manifests, checkpoints, run records,
bundles) is written the same way: under a temporary name, flushed to disk, renamed into place, and a
full disk or a read-only folder ends in one :class:`~sercore.errors.EnvironmentProblem` naming the path.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import EnvironmentProblem, environment_problem

#: errno values that mean "the machine, not the data": the write cannot succeed here whatever the input.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Create ``path`` through ``write(tmp)`` on the temporary name ``<path>.tmp``, fsync it, rename it into
    place (``os.replace``, atomic on POSIX) and fsync the folder, so a crash leaves the old file or the new one,
    never half of either. The temporary file is removed on any failure.

    An error for no space or no permission becomes an :class:`EnvironmentProblem` naming ``path``. h5py
    reports a full disk as a RuntimeError or OSError whose text holds the errno, so those are read too, and
    a failed write is checked against the free space.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as exc:
        problem = _problem_of(path, exc)
        if problem is not None:
            raise problem from None
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def _problem_of(path: Path, exc: BaseException) -> EnvironmentProblem | None:
    """The one-line problem (naming ``path``, not the temporary file) of a write that failed for want of space
    or permission: an OSError's errno, the errno in h5py's and torch's error text, or an almost full disk."""
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None:
        text = str(exc)
        code = next((c for c in sorted(_NO_SPACE | _NOT_WRITABLE) if f"errno = {c}," in text or os.strerror(c) in text), None)
    if code is None:
        return _disk_full(path)
    return _environment(path, code)


def _environment(path: Path, code: int) -> EnvironmentProblem | None:
    return environment_problem(OSError(code, os.strerror(code)), path)


def _disk_full(path: Path) -> EnvironmentProblem | None:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < 1 << 20:  # under 1 MiB free: the write failed for want of space
        return _environment(path, errno.ENOSPC)
    return None


def ensure_free_space(path: str | Path, needed: int, margin: int = 1 << 20) -> None:
    """Refuse (:class:`EnvironmentProblem` naming ``path``) to start a write of about ``needed`` bytes that the
    file system of ``path``'s folder has no room for (with ``margin`` to spare)."""
    path = Path(path)
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < needed + margin:
        raise EnvironmentProblem(path, f"no space left on device: about {(needed + margin) / 2**20:.1f} MiB needed, "
                                       f"{free / 2**20:.1f} MiB free; free some space and run the command again "
                                       "(what was committed before is intact)")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not fsync directories
        pass
    finally:
        os.close(fd)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, or of every file below a folder (relative names and bytes, in path order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with p.open("rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


def hash_array(h, array) -> None:
    """Feed an array to ``h`` (a :mod:`hashlib` hash): its shape, then its bytes in C order (convert the dtype first
    where it matters)."""
    a = np.ascontiguousarray(array)
    h.update(np.asarray(a.shape, np.int64).tobytes())
    h.update(a.tobytes())


class FolderLock:
    """An exclusive, non-blocking lock on a folder (``flock`` on ``<folder>/<name>``) that names its holder.

    The lock file holds the PID of the process that holds the lock; the kernel releases the lock when that
    process ends, even by SIGKILL, so a killed run never leaves a stale lock. The file itself stays (removing
    it would race with a process about to lock it) and is reused by the next run, so taking the lock creates
    nothing new after the first time. On a read-only folder the lock is taken on a read-only descriptor (or not
    at all if the file cannot be created there), and :attr:`writable` is False: nothing can write there anyway.

    >>> with FolderLock(Path("features/emodb"), ".extract.lock", "extract") as lock:
    ...     ...   # EnvironmentProblem if another extract holds it, naming its PID
    """

    def __init__(self, folder: str | Path, name: str, what: str):
        self.path = Path(folder) / name
        self.what = what
        self.writable = True
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in _NOT_WRITABLE | {errno.ENOSPC}:
                raise
            self.writable = False
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                return self  # no lock file on a read-only folder: nobody can write there
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder()
            os.close(self._fd)
            self._fd = None
            raise EnvironmentProblem(self.path.parent, f"another {self.what} is writing here"
                                     + (f" (PID {holder}, lock {self.path})" if holder else f" (lock {self.path})")
                                     + "; wait for it to finish or stop it, then run this again") from None
        if self.writable:
            try:
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                pass
        return self

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is not None:
            if self.writable:
                try:
                    os.ftruncate(self._fd, 0)
                except OSError:
                    pass
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
