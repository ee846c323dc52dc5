"""Atoms from a segmented density: connected components of the per-voxel classes.

docs/density_vae.md §6 (Hoffmann et al. §4.2.2):

1. S̃ = argmax_c logits[c] per voxel (or given class indices);
2. connected components of the voxels with S̃ ≠ 0 (any class), 6-connectivity (faces) by
   default, 26 (faces, edges, corners) as option (``scipy.ndimage.label``);
3. element of a component = its majority class; ties go to the class with the larger summed
   softmax probability over the component (then the smaller class index);
4. position = unweighted mean of the component's voxel centres (i + ½)h (Å), or the mean
   weighted by the decoded density M̂ (``weighted=True``);
5. :meth:`RecoveredAtoms.to_atoms` exports ``ase.Atoms`` in the box, or mapped back into the
   crystal frame / cell when the sample's rotation is known.

Baseline without the segmentation network (:func:`peak_atoms`): voxels equal to the maximum of
their 3 × 3 × 3 neighbourhood with M·σ³(2π)^{3/2} ≥ threshold; plateaus of equal maxima are
merged (one atom per connected group, at its mean position); Z = round(peak · σ³(2π)^{3/2}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ase import Atoms
from scipy import ndimage

from deepatoms.data.voxels.dataset import MAX_Z, ClassMap
from deepatoms.data.voxels.grid import GridSpec, plot_scale

__all__ = ["RecoveredAtoms", "peak_atoms", "recover_atoms"]


@dataclass
class RecoveredAtoms:
    """Atoms recovered from one sample (box frame).

    Attributes:
        numbers: atomic numbers [k] int64.
        positions: positions [k, 3] (Å, box frame).
        n_voxels: voxels of each atom's component [k] int64.
        box: side of the box (Å).
    """

    numbers: np.ndarray
    positions: np.ndarray
    n_voxels: np.ndarray
    box: float

    def __len__(self) -> int:
        return len(self.numbers)

    def to_atoms(
        self,
        cell: np.ndarray | None = None,
        rotation: np.ndarray | None = None,
        translation: np.ndarray | None = None,
        wrap: bool = True,
    ) -> Atoms:
        """The atoms as ``ase.Atoms``.

        Without ``rotation`` the positions stay in the box frame. With ``rotation`` R (and the
        sample's ``translation`` t; box = crystal @ R.T + t) they are mapped back into the crystal
        frame; when t is not given it is that of single-cell centring, t = c₀ − R·½(a + b + c)
        (c₀ = box centre; c = c₀ without ``cell``). With ``cell`` (rows, Å) the result is periodic
        in that cell (positions wrapped into it when ``wrap``); otherwise its cell is the box cube
        and pbc is False.
        """
        pos = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if rotation is not None:
            rot = np.asarray(rotation, dtype=np.float64)
            if translation is None:
                c0 = np.full(3, 0.5 * self.box)
                centre = 0.5 * np.asarray(cell).sum(axis=0) if cell is not None else c0
                translation = c0 - rot @ centre
            pos = (pos - np.asarray(translation, dtype=np.float64)) @ rot
        if cell is None:
            return Atoms(numbers=self.numbers, positions=pos, cell=np.eye(3) * self.box)
        atoms = Atoms(numbers=self.numbers, positions=pos, cell=np.asarray(cell), pbc=True)
        if wrap and len(atoms):
            atoms.wrap()
        return atoms


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _structure(connectivity: int) -> np.ndarray:
    if connectivity == 6:
        return ndimage.generate_binary_structure(3, 1)
    if connectivity == 26:
        return ndimage.generate_binary_structure(3, 3)
    raise ValueError(f"connectivity must be 6 or 26, got {connectivity!r}")


def _split_input(x: np.ndarray, grid: GridSpec) -> tuple[list[np.ndarray], bool]:
    """Per-sample arrays and whether they are logits ([C, n, n, n]) or classes ([n, n, n])."""
    n = grid.n
    logits = np.issubdtype(x.dtype, np.floating)
    single_ndim = 4 if logits else 3
    if x.ndim == single_ndim:
        x = x[None]
    if x.ndim != single_ndim + 1 or x.shape[-3:] != (n, n, n):
        want = "[B, C, n, n, n] or [C, n, n, n] logits" if logits else "[B, n, n, n] classes"
        raise ValueError(f"recover_atoms: expected {want} with n = {n}, got shape {x.shape}")
    return list(x), logits


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _component_classes(
    classes: np.ndarray, labels: np.ndarray, k: int, n_classes: int, logits: np.ndarray | None
) -> np.ndarray:
    """Majority class of components 1..k (ties: larger summed probability, then smaller index)."""
    fg = labels > 0
    lab, cls = labels[fg] - 1, classes[fg]
    votes = np.bincount(lab * n_classes + cls, minlength=k * n_classes).reshape(k, n_classes)
    best = votes.max(axis=1, keepdims=True)
    tied = (votes == best).sum(axis=1) > 1
    if tied.any() and logits is not None:
        prob = _softmax(logits.astype(np.float64))[:, fg]  # [C, voxels]
        for comp in np.nonzero(tied)[0]:
            sel = lab == comp
            mass = prob[:, sel].sum(axis=1)
            mass[votes[comp] != best[comp, 0]] = -np.inf
            votes[comp] = np.where(mass == mass.max(), votes[comp], -1)
    return votes.argmax(axis=1)  # argmax returns the smallest index among equals


def recover_atoms(
    logits_or_classes: Any,
    grid: GridSpec,
    class_map: ClassMap,
    connectivity: int = 6,
    density: Any = None,
    weighted: bool = False,
) -> list[RecoveredAtoms]:
    """Atoms of each sample from per-voxel logits ``[B, C, n, n, n]`` / ``[C, n, n, n]`` (float)
    or class indices ``[B, n, n, n]`` / ``[n, n, n]`` (int); numpy or torch (module docstring).

    ``weighted=True`` uses the density ``[B, 1, n, n, n]`` / ``[B, n, n, n]`` / ``[n, n, n]`` as
    centroid weights (components with zero total weight fall back to the unweighted mean).
    """
    items, is_logits = _split_input(_numpy(logits_or_classes), grid)
    if is_logits and items[0].shape[0] != class_map.n_classes:
        raise ValueError(
            f"recover_atoms: logits have {items[0].shape[0]} classes but the class map has "
            f"{class_map.n_classes}; use the model's class map"
        )
    weights: list[np.ndarray | None] = [None] * len(items)
    if weighted:
        if density is None:
            raise ValueError("recover_atoms: weighted=True needs the density (density=...)")
        d = _numpy(density).astype(np.float64).reshape(-1, grid.n, grid.n, grid.n)
        if len(d) != len(items):
            raise ValueError(f"recover_atoms: {len(d)} densities for {len(items)} samples")
        weights = list(d)
    structure = _structure(connectivity)
    out = []
    for x, w in zip(items, weights, strict=True):
        classes = x.argmax(axis=0) if is_logits else x.astype(np.int64)
        if classes.size and (classes.min() < 0 or classes.max() >= class_map.n_classes):
            raise ValueError(
                f"recover_atoms: class indices must lie in 0..{class_map.n_classes - 1}, got "
                f"{classes.min()}..{classes.max()}"
            )
        out.append(_components(classes, grid, class_map, structure, x if is_logits else None, w))
    return out


def _components(
    classes: np.ndarray,
    grid: GridSpec,
    class_map: ClassMap,
    structure: np.ndarray,
    logits: np.ndarray | None,
    weight: np.ndarray | None,
) -> RecoveredAtoms:
    labels, k = ndimage.label(classes != 0, structure=structure)
    if k == 0:
        return RecoveredAtoms(
            np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, np.int64), grid.box
        )
    comp_cls = _component_classes(classes, labels, k, class_map.n_classes, logits)
    flat = labels.reshape(-1)
    idx = np.stack(np.unravel_index(np.arange(flat.size), labels.shape), axis=1)[flat > 0]
    lab = flat[flat > 0] - 1
    n_vox = np.bincount(lab, minlength=k)
    ones = np.ones(len(lab))
    wts = ones if weight is None else weight.reshape(-1)[flat > 0]
    total = np.bincount(lab, weights=wts, minlength=k)
    use = total > 0
    wts_final = np.where(use[lab], wts, ones)
    total = np.where(use, total, n_vox)
    centre = np.stack(
        [np.bincount(lab, weights=wts_final * idx[:, a], minlength=k) for a in range(3)], axis=1
    )
    positions = (centre / total[:, None] + 0.5) * grid.h
    return RecoveredAtoms(class_map.to_z(comp_cls), positions, n_vox.astype(np.int64), grid.box)


def peak_atoms(density: Any, grid: GridSpec, threshold: float = 0.5) -> list[RecoveredAtoms]:
    """Non-learned baseline (module docstring): local maxima of M (``[B, 1, n, n, n]``,
    ``[B, n, n, n]`` or ``[n, n, n]``) whose plot-scaled value M·σ³(2π)^{3/2} is at least
    ``threshold`` (units of Z); Z = round(plot-scaled peak) clipped to 1..94."""
    n = grid.n
    d = _numpy(density).astype(np.float64)
    if d.shape[-3:] != (n, n, n):
        raise ValueError(
            f"peak_atoms: expected a density with last axes ({n}, {n}, {n}), got {d.shape}"
        )
    d = d.reshape(-1, n, n, n) * plot_scale(grid)
    out = []
    for m in d:
        peak = (m == ndimage.maximum_filter(m, size=3, mode="constant", cval=-np.inf)) & (
            m >= threshold
        )
        labels, k = ndimage.label(peak, structure=ndimage.generate_binary_structure(3, 3))
        if k == 0:
            out.append(
                RecoveredAtoms(
                    np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, np.int64), grid.box
                )
            )
            continue
        index = np.arange(1, k + 1)
        centre = np.array(ndimage.center_of_mass(peak, labels, index)).reshape(k, 3)
        height = np.asarray(ndimage.maximum(m, labels, index))
        z = np.clip(np.rint(height), 1, MAX_Z).astype(np.int64)
        sizes = np.bincount(labels.reshape(-1), minlength=k + 1)[1:]
        out.append(RecoveredAtoms(z, (centre + 0.5) * grid.h, sizes.astype(np.int64), grid.box))
    return out
