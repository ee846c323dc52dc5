"""Structures for simulations: read from a file or built from a molecule name / SMILES; written
atomically."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from deepatoms.core.files import atomic_target, check_input_file, default_file_mode

# Names that look like structure files even when they do not exist (for a clear error).
_FILE_NAME = re.compile(
    r"(\.(xyz|extxyz|cif|traj|vasp|poscar|pdb|json|db|xsf|gen|cfg|in|res|mol|sdf)$)|"
    r"(^|[/\\])(POSCAR|CONTCAR)[^/\\]*$",
    re.IGNORECASE,
)


def _read_file(path: Path, index: str | int) -> Any:
    from ase.io import read

    check_input_file(path, "structure file")
    try:
        atoms = read(path, index=index)
    except Exception as exc:  # ase.io raises many types for unreadable files
        raise ValueError(
            f"cannot read a structure from {path} ({type(exc).__name__}: {exc}); give a file "
            "that ase.io.read understands (xyz, extxyz, cif, POSCAR, traj, …)"
        ) from exc
    if isinstance(index, str) and ":" in index:  # a slice: a list of frames
        if not atoms:
            raise ValueError(f"{path} holds no structures")
        for k, a in enumerate(atoms):
            if len(a) == 0:
                raise ValueError(f"{path} (frame {k}) holds no atoms")
        return atoms
    if len(atoms) == 0:
        raise ValueError(f"{path} (frame {index}) holds no atoms")
    return atoms


def _last_frames(path: Path) -> list[Atoms]:
    """The last two frames of ``path`` (one for single-frame files and formats), without
    reading a long trajectory whole."""
    from ase.io import read

    check_input_file(path, "structure file")
    try:
        frames = read(path, index="-2:")
    except Exception:  # single-frame formats (POSCAR, …) take no slice; unreadable files
        return [_read_file(path, -1)]  # fail here with the usual message
    if not frames or any(len(a) == 0 for a in frames):
        return [_read_file(path, -1)]
    return frames


def load_structure(spec: str, seed: int = 0) -> Atoms:
    """One structure (positions in Å) of ``spec``: see :func:`read_structure_spec`."""
    return read_structure_spec(spec, seed)[0]


def read_structure_spec(spec: str, seed: int = 0) -> tuple[Atoms, str | None]:
    """One structure (positions in Å) from a file or a molecule spec.

    ``spec`` is, in this order:

    1. an existing file readable by ``ase.io.read`` (xyz, extxyz, cif, POSCAR, traj, …); its last
       frame is used (the note says so when the file holds several);
    2. ``FILE@INDEX`` with ASE's index syntax for one frame (``run.traj@0``, ``md.xyz@-1``);
    3. a molecule spec of :func:`deepatoms.datagen.structures.molecule_from_spec`: an ASE
       molecule name (``CH3CH2OH``), an alias (``ethanol``) or SMILES (``smiles:CCO``), embedded
       in 3-D with ``seed``.

    The structure is checked (:func:`deepatoms.data.validate.check_atoms`). Returns the atoms,
    which carry no calculator (labels stored in the file are dropped), and a note for the user
    or None.
    """
    text = str(spec).strip()
    if not text:
        raise ValueError("empty structure: give a structure file or a molecule name / SMILES")
    path = Path(text)
    note = None
    if path.exists() and not path.is_dir():
        frames = _last_frames(path)
        atoms = frames[-1]
        if len(frames) > 1:
            note = (f"{path} holds several frames; using the last one ({path}@-1). "
                    f"Pick another with {path}@INDEX, e.g. {path}@0")  # fmt: skip
    elif "@" in text and Path(text.rsplit("@", 1)[0]).exists():
        name, index = text.rsplit("@", 1)
        atoms = _read_file(Path(name), index)
        if isinstance(atoms, list):  # a slice
            if len(atoms) != 1:
                raise ValueError(
                    f"{text} selects {len(atoms)} frames; give one frame, e.g. {name}@-1 "
                    f"(deepatoms relax takes {name}@: to relax every frame)"
                )
            atoms = atoms[0]
    elif path.is_dir():
        raise ValueError(f"structure {text!r} is a folder; give a structure file")
    elif _FILE_NAME.search(text.rsplit("@", 1)[0]):
        raise FileNotFoundError(
            f"structure file {text.rsplit('@', 1)[0]} does not exist (check the path)"
        )
    else:
        from deepatoms.data.structures import molecule_from_spec

        try:
            atoms = molecule_from_spec(text, seed=seed)
        except ValueError as exc:
            raise ValueError(
                f"structure {text!r} is neither an existing file nor a known molecule: {exc}"
            ) from exc
    from deepatoms.data.validate import check_atoms

    check_atoms(atoms, f"structure {text}")
    atoms = atoms.copy()
    atoms.calc = None
    return atoms, note


def is_frame_range(spec: str) -> bool:
    """True for ``FILE@SLICE`` specs that select several frames (``run.traj@:``, ``x.xyz@2:5``)."""
    text = str(spec).strip()
    return "@" in text and ":" in text.rsplit("@", 1)[1] and Path(text.rsplit("@", 1)[0]).exists()


def read_structure_frames(spec: str) -> list[Atoms]:
    """Every frame that ``FILE@SLICE`` selects (ASE's slice syntax, e.g. ``@:``, ``@::2``), each
    checked (:func:`deepatoms.data.validate.check_atoms`), without calculators."""
    from deepatoms.data.validate import check_atoms

    name, index = str(spec).strip().rsplit("@", 1)
    frames = _read_file(Path(name), index)
    out = []
    for k, atoms in enumerate(frames):
        check_atoms(atoms, f"{name}, frame {k} of {index}")
        atoms = atoms.copy()
        atoms.calc = None
        out.append(atoms)
    return out


def structure_format(path: str | Path) -> str:
    """The ASE format name that ``ase.io.write`` would use for ``path``, or a clear error."""
    from ase.io.formats import filetype, ioformats

    try:
        fmt = filetype(Path(path), read=False)
    except Exception:
        fmt = None
    if fmt not in ioformats or not ioformats[fmt].can_write:
        raise ValueError(
            f"cannot tell a structure format that ASE can write from the name {path}; use a "
            "suffix such as .extxyz, .xyz, .cif or .traj"
        )
    return fmt


def write_structures(path: str | Path, images: Atoms | Sequence[Atoms]) -> Path:
    """Write one or more structures with ``ase.io.write`` atomically (temporary file + rename).

    The format follows the file name (``.extxyz``, ``.xyz``, ``.cif``, ``.traj``, ``POSCAR`` …).
    Energies and forces attached through a calculator are written where the format allows.
    """
    from ase.io import write

    path = Path(path)
    fmt = structure_format(path)
    with atomic_target(path) as tmp:
        write(tmp, images, format=fmt)
    return path


class PartialFile:
    """A file written while a simulation runs: into a hidden ``.NAME.part`` next to ``path``,
    renamed onto ``path`` by :meth:`finish` (so a killed run never leaves a half-written file
    under the target name)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = self.path.with_name(f".{self.path.name}.part")
        self.part.unlink(missing_ok=True)

    def finish(self) -> None:
        """Move the partial file into place (if anything was written)."""
        if self.part.exists():
            os.chmod(self.part, default_file_mode(self.path))
            os.replace(self.part, self.path)


__all__ = [
    "PartialFile",
    "is_frame_range",
    "load_structure",
    "read_structure_frames",
    "read_structure_spec",
    "structure_format",
    "write_structures",
]
