"""Atomic file writes and JSON helpers shared by every writer in the package.

Every output is written to a temporary file in the target folder, given the usual permissions
(the mode of the file it replaces, else 0666 minus the process umask, so 0644 under umask 022)
and renamed over the target. A killed process therefore never leaves a half-written file in
place, and a failed write removes its temporary file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_target",
    "atomic_torch_save",
    "atomic_write_text",
    "check_input_file",
    "check_new_file",
    "default_file_mode",
    "json_ready",
    "read_json",
    "write_json",
]


def default_file_mode(path: Path) -> int:
    """Mode of the existing ``path``, else 0o666 minus the process umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, else is removed.

    The folder of ``path`` is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)  # fmt: skip
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, default_file_mode(path))  # mkstemp makes 0600: use the usual mode
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary files of earlier writes of ``path`` whose process was killed (their
    names carry the writer's process id; files of live processes are left alone)."""
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except PermissionError:
            pass  # alive, another user's


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` of ``obj`` to ``path`` atomically."""
    import torch

    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


def json_ready(obj: Any, strict: bool = True) -> Any:
    """``obj`` with numpy scalars and arrays as Python values and paths as strings, recursively;
    ``strict``: non-finite floats become None too (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v, strict) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v, strict) for v in obj]
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars, tensors
        return json_ready(obj.tolist(), strict)
    if isinstance(obj, os.PathLike):
        return str(obj)
    if strict and isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (numpy values converted; NaN is
    kept as the ``NaN`` token Python's json module reads back)."""
    atomic_write_text(path, json.dumps(json_ready(obj, strict=False), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; the error names the file when it is missing or not valid JSON."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def check_new_file(path: str | os.PathLike, overwrite: bool, hint: str = "") -> Path:
    """Refuse to replace an existing ``path`` unless ``overwrite``; ``hint`` ends the message
    (e.g. an alternative option). Returns the path."""
    from deepatoms.core.errors import DeepatomsError

    path = Path(path)
    if path.exists() and not overwrite:
        raise DeepatomsError(f"{path} already exists; pass --overwrite to replace it{hint}")
    return path


#: An xyz header claiming more atoms than this is taken as corrupt.
MAX_XYZ_ATOMS = 10_000_000


def check_input_file(path: str | os.PathLike, what: str = "input file") -> Path:
    """``path`` as a regular file that is safe to read: it exists, is not a folder, a pipe or a
    device (which could block for ever), and, for xyz files, its first frame's atom count fits
    the file's size (a corrupt header would otherwise be read for minutes). Returns the path."""
    import stat

    from deepatoms.core.errors import DeepatomsError, MissingFileError

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MissingFileError(f"{what} {path} does not exist (check the path)") from None
    except OSError as exc:
        raise DeepatomsError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise DeepatomsError(f"{what} {path} is a folder; give a file")
    if not stat.S_ISREG(mode):
        raise DeepatomsError(
            f"{what} {path} is not a regular file (a pipe, socket or device); save the data "
            "to a file first"
        )
    if path.suffix.lower() in (".xyz", ".extxyz"):
        _check_xyz_header(path)
    return path


def _check_xyz_header(path: Path) -> None:
    """Refuse an xyz file whose first line claims more atoms than the file can hold."""
    from deepatoms.core.errors import DeepatomsError

    with open(path, "rb") as fh:
        first = fh.readline(256).strip()
    if not first:
        return  # empty files are reported by the reader
    try:
        n = int(first)
    except ValueError:
        return  # not a plain count: the reader says what is wrong
    size = path.stat().st_size
    # every atom line holds at least a symbol and three numbers: ≥ 8 bytes
    if n < 0 or n > MAX_XYZ_ATOMS or n * 8 > size:
        raise DeepatomsError(
            f"{path}: the first line says {n} atoms, but the file ({size} bytes) cannot hold "
            "them; the xyz header is corrupt"
        )
