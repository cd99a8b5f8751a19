"""Writing a user's output file: all or nothing, never over a file it may not touch.

Every file is written under a unique temporary name in the target folder
(``tempfile``, so a user's own ``X.partial`` or ``X.tmp`` is never touched)
and renamed over the target at the end; a failure removes the temporary file.
With ``force`` an existing target is replaced: a symlink is replaced by a
regular file (its target is left alone) and the new file gets the default
permissions (umask), also where the old one was read-only.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputExistsError, PlugkitError


class OutputFileError(PlugkitError, OSError):
    """An output path that cannot be written (a folder, a missing or read-only folder, exists...)."""


FORCE_HELP = ("overwrite an existing output file (a symlink there is replaced by a regular file, "
              "and the new file gets default permissions even where the old one was read-only)")


def check_output_path(path, *, force: bool = False, what: str = "output") -> Path:
    """``path`` as a Path if a file can be written there; OutputFileError naming the problem."""
    if path is None or str(path).strip() == "":
        raise OutputFileError(f"the {what} path is empty; give a file name")
    path = Path(path)
    if path.is_dir():
        raise OutputFileError(f"{what} {path} is a directory; give a file name inside it")
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputExistsError(f"{what} {path} exists (force=True overwrites it)")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputFileError(f"cannot write {path}: {folder} is not a directory")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise OutputFileError(f"cannot write {path}: directory {folder} is not writable")
    return path


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path, *, force: bool = False, what: str = "output") -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write; renames it to ``path`` when the
    block ends without an exception, removes it otherwise."""
    path = check_output_path(path, force=force, what=what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise OutputFileError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputFileError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
