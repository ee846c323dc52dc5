"""Trajectory analyses: radial distribution functions and the energy drift of NVE runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import vesin
from ase import Atoms
from ase.data import atomic_numbers


def energy_drift(times_ps: Sequence[float], etot: Sequence[float], n_atoms: int) -> dict:
    """Drift and fluctuation of the total energy of an MD run.

    Args:
        times_ps: times (ps), one per sample.
        etot: total energies (eV) at those times.
        n_atoms: number of atoms (the results are per atom).

    Returns:
        ``drift``: slope of a least-squares line through Etot(t), eV/atom/ps; ``std``: standard
        deviation of Etot around that line, eV/atom; ``max_deviation``: max |Etot − Etot(0)|,
        eV/atom; ``n_samples``.
    """
    t = np.asarray(times_ps, dtype=float)
    e = np.asarray(etot, dtype=float)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError(
            f"times and energies must be 1-D of equal length, got {t.shape}, {e.shape}"
        )
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be >= 1, got {n_atoms}")
    if len(t) < 2 or np.ptp(t) == 0:
        return {"drift": 0.0, "std": 0.0, "max_deviation": 0.0, "n_samples": len(t)}
    slope, intercept = np.polyfit(t, e, 1)
    resid = e - (slope * t + intercept)
    return {
        "drift": float(slope / n_atoms),
        "std": float(resid.std() / n_atoms),
        "max_deviation": float(np.abs(e - e[0]).max() / n_atoms),
        "n_samples": len(t),
    }


def _element(x: str | int) -> int:
    if isinstance(x, (int, np.integer)):
        return int(x)
    if x not in atomic_numbers:
        raise ValueError(f"unknown element {x!r} in pairs; give symbols such as ('O', 'H')")
    return atomic_numbers[x]


def _select(numbers: np.ndarray, pairs: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the first and second species of the pair (all atoms without pairs)."""
    if pairs is None:
        every = np.ones(len(numbers), bool)
        return every, every
    return numbers == pairs[0], numbers == pairs[1]


def _molecule_counts(atoms: Atoms, edges: np.ndarray, pairs) -> tuple[np.ndarray, int]:
    """Histogram of the selected intramolecular pair distances and the number of such pairs."""
    a, b = _select(atoms.numbers, pairs)
    i, j = np.triu_indices(len(atoms), k=1)
    keep = (a[i] & b[j]) | (a[j] & b[i])
    d = np.linalg.norm(atoms.positions[j[keep]] - atoms.positions[i[keep]], axis=1)
    return np.histogram(d, bins=edges)[0], int(keep.sum())


def _periodic_counts(atoms: Atoms, edges: np.ndarray, pairs) -> tuple[np.ndarray, float]:
    """Histogram of distances from A atoms to B neighbours (all images) and N_A·N_B/V."""
    a, b = _select(atoms.numbers, pairs)
    nl = vesin.NeighborList(cutoff=float(edges[-1]), full_list=True)
    i, j, d = nl.compute(
        points=atoms.positions, box=atoms.cell.array, periodic=True, quantities="ijd"
    )
    keep = a[i] & b[j]
    return np.histogram(d[keep], bins=edges)[0], a.sum() * b.sum() / atoms.get_volume()


def radial_distribution(
    frames: Atoms | Iterable[Atoms],
    rmax: float,
    nbins: int,
    pairs: tuple[str | int, str | int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution over the frames of a trajectory.

    Args:
        frames: one structure or an iterable of them (e.g. ``ase.io.read("md.traj", ":")``).
        rmax: largest distance (Å).
        nbins: number of bins on [0, rmax].
        pairs: restrict to pairs of two elements, e.g. ``("O", "H")`` (default: all atoms).

    Returns:
        ``(r, g)``: bin centres (Å) and

        - for molecules (no periodic axis): the probability density (1/Å) of the selected
          intramolecular pair distances, normalised over all selected pairs (∫ g dr is the
          fraction of pairs closer than rmax);
        - for 3-D periodic cells: the standard g(r) = n_AB(r) / (N_A · N_B/V · 4πr²dr) with all
          periodic images (any rmax; → 1 at large r for an ideal gas), averaged over frames.
    """
    frames = [frames] if isinstance(frames, Atoms) else list(frames)
    if not frames:
        raise ValueError("no frames to analyse")
    if not rmax > 0 or int(nbins) < 1:
        raise ValueError(f"need rmax > 0 Å and nbins >= 1, got rmax={rmax}, nbins={nbins}")
    sel = None if pairs is None else (_element(pairs[0]), _element(pairs[1]))
    edges = np.linspace(0.0, float(rmax), int(nbins) + 1)
    r = 0.5 * (edges[1:] + edges[:-1])
    kinds = {
        "periodic" if a.pbc.all() else "molecule" if not a.pbc.any() else "mixed" for a in frames
    }
    if "mixed" in kinds or len(kinds) > 1:
        raise ValueError(
            "radial_distribution needs frames that are all molecules (no pbc) or all 3-D "
            "periodic cells; partially periodic frames are not supported"
        )
    counts = np.zeros(len(r))
    if kinds == {"molecule"}:
        n_pairs = 0
        for atoms in frames:
            c, n = _molecule_counts(atoms, edges, sel)
            counts += c
            n_pairs += n
        if n_pairs == 0:
            raise ValueError(f"no atom pairs of kind {pairs} in the frames")
        return r, counts / (n_pairs * np.diff(edges))
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = np.zeros(len(r))
    for atoms in frames:
        c, norm = _periodic_counts(atoms, edges, sel)
        if norm == 0:
            raise ValueError(f"no atoms of kind {pairs} in a frame")
        g += c / (norm * shell)
    return r, g / len(frames)


__all__ = ["energy_drift", "radial_distribution"]
