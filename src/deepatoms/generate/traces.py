"""Random training traces of G-SchNet (Gebauer et al. 2019, supplementary; docs/gschnet.md §6).

Preparation (:func:`prepare_molecules`): molecules are centred on their centre of mass (atomic
masses) and their atoms sorted by distance to it (ties by stored order); the bond graph stored
with the data (``GraphSpec(kind="bonds")``) gives the connectivity. A file written by the data
preparation is already centred and sorted; any other file is centred and sorted here, on the
fly, and the counts are reported (``Molecules.n_recentred`` / ``n_reordered``).

One trace of a molecule with n atoms (:func:`random_trace`), 2n steps:

1. focus and origin tokens at the centre of mass (the origin); target = atom 0, the atom
   closest to the centre of mass;
2. focus c = a uniformly random placed, unfinished atom (the focus token moves onto it);
3. target = the unplaced bonded neighbour of c closest to the origin token (the lowest sorted
   index); if c has none, target = **stop** and c is finished;
4. repeat until every atom is placed and finished: n placements, n stops.

Step t of a trace is the partial molecule {focus token, origin token, atoms placed so far}
with its type label (the target's element or stop) and, for placements, the distances from
every node to the new atom (:func:`training_steps`, node order of ``generate.steps``). A new
trace is drawn per molecule and epoch from the generator seeded by (seed, epoch, molecule
index), so traces differ between epochs, do not depend on the batch composition, and a resumed
run redraws the same ones. ``draw_random_samples = k > 0`` keeps k of the 2n steps (drawn
without replacement from the same generator; all when 2n ≤ k).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase.data import atomic_masses

from deepatoms.data.graph import Batch
from deepatoms.data.packed import PackedSystems
from deepatoms.generate.steps import steps_batch
from deepatoms.models.gschnet import FOCUS_TOKEN, ORIGIN_TOKEN, STOP, TYPE_CLASSES

__all__ = [
    "VALIDATION_EPOCH",
    "Molecules",
    "Trace",
    "prepare_molecules",
    "random_trace",
    "trace_rng",
    "training_steps",
]

#: Epoch key of the fixed validation traces (the same in every epoch, so losses compare).
VALIDATION_EPOCH = 2**31 - 1
_CENTRE_TOL = 1e-4  # Å: a centre of mass farther from the origin than this is recentred
_SORT_TOL = 1e-6  # Å


@dataclass
class Molecules:
    """Centred, sorted molecules with their bond neighbours (see module docstring).

    ``numbers`` [N], ``positions`` [N, 3] (Å, centre of mass at the origin), ``offsets`` [B + 1];
    the bonded neighbours of atom a (global index) are ``nbr[nbr_offsets[a]:nbr_offsets[a + 1]]``
    (global indices, ascending = closest to the centre of mass first).
    """

    numbers: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    nbr_offsets: np.ndarray
    nbr: np.ndarray
    n_recentred: int = 0
    n_reordered: int = 0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def neighbours(self, k: int) -> list[list[int]]:
        """Bonded neighbours of every atom of molecule ``k`` (local indices, ascending)."""
        s, e = int(self.offsets[k]), int(self.offsets[k + 1])
        lo, hi = int(self.nbr_offsets[s]), int(self.nbr_offsets[e])
        local = (self.nbr[lo:hi] - s).tolist()
        cuts = (self.nbr_offsets[s : e + 1] - lo).tolist()
        return [local[cuts[a] : cuts[a + 1]] for a in range(e - s)]


@dataclass
class Trace:
    """One trace of a molecule (local atom indices): ``order`` [n] placement order; per step t
    of 2n: ``focus[t]`` (−1: first step, tokens at the centre of mass), ``target[t]`` (−1:
    stop), ``n_placed[t]`` atoms placed before the step (they are ``order[:n_placed[t]]``)."""

    order: np.ndarray
    focus: np.ndarray
    target: np.ndarray
    n_placed: np.ndarray


def trace_rng(seed: int, epoch: int, molecule: int) -> np.random.Generator:
    """The generator of the trace of ``molecule`` in ``epoch`` (reproducible, epoch-dependent)."""
    return np.random.default_rng([int(seed), int(epoch), int(molecule)])


def _bad_elements(numbers: np.ndarray, where: str) -> None:
    allowed = np.array(TYPE_CLASSES[:-1])
    bad = np.setdiff1d(np.unique(numbers), allowed)
    if len(bad):
        raise ValueError(
            f"{where} holds elements Z = {bad.tolist()}; G-SchNet places H, C, N, O and F only "
            "(Z = 1, 6, 7, 8, 9): filter the molecules first"
        )


def prepare_molecules(data: PackedSystems, where: str = "the dataset") -> Molecules:
    """Centre, sort and index the bond neighbours of every molecule of ``data`` (vectorised).

    Needs the stored bond graph (``deepatoms.data.bonds``) and non-periodic molecules of H, C,
    N, O, F; errors name the problem and ``where`` (e.g. the file).
    """
    edges = data.edges
    if edges is None or getattr(edges.spec, "kind", None) != "bonds":
        raise ValueError(
            f"{where} has no stored bond graph; G-SchNet traces follow bonds: prepare the data "
            "with the G-SchNet preparation command or deepatoms.data.bonds.attach_bonds"
        )
    if np.any(data.pbc):
        raise ValueError(f"{where} holds periodic systems; G-SchNet generates molecules only")
    _bad_elements(data.numbers, where)
    n_atoms = data.n_atoms
    if len(data) and n_atoms.min() < 1:
        raise ValueError(f"{where} holds empty systems (0 atoms); drop them first")
    mol = np.repeat(np.arange(len(data)), n_atoms)
    mass = atomic_masses[data.numbers]
    com = np.zeros((len(data), 3))
    np.add.at(com, mol, data.positions * mass[:, None])
    total = np.bincount(mol, weights=mass, minlength=len(data))
    com /= total[:, None]
    off_centre = np.linalg.norm(com, axis=1) > _CENTRE_TOL
    pos = data.positions - com[mol]
    dist = np.linalg.norm(pos, axis=1)
    local = np.arange(len(mol)) - data.offsets[mol]
    perm = np.lexsort((local, dist, mol))  # new → old, within each molecule by distance
    unsorted = np.zeros(len(data), dtype=bool)
    step_down = np.diff(dist) < -_SORT_TOL
    same_mol = mol[1:] == mol[:-1]
    unsorted[mol[1:][step_down & same_mol]] = True
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    # Bond neighbours, global and renumbered: the mirrored stored list holds both directions.
    counts = np.diff(edges.offsets)
    atom0 = np.repeat(data.offsets[:-1], counts)
    recv = inv[edges.edge_index[0] + atom0]
    send = inv[edges.edge_index[1] + atom0]
    order = np.lexsort((send, recv))
    recv, send = recv[order], send[order]
    nbr_offsets = np.concatenate([[0], np.cumsum(np.bincount(recv, minlength=len(mol)))])
    return Molecules(
        numbers=data.numbers[perm],
        positions=pos[perm],
        offsets=data.offsets.copy(),
        nbr_offsets=nbr_offsets.astype(np.int64),
        nbr=send.astype(np.int64),
        n_recentred=int(off_centre.sum()),
        n_reordered=int(unsorted.sum()),
    )


def random_trace(neighbours: Sequence[Sequence[int]], rng: np.random.Generator) -> Trace:
    """A random trace (module docstring) of a molecule whose atoms are sorted by distance to the
    centre of mass; ``neighbours[a]``: bonded neighbours of atom a, ascending."""
    n = len(neighbours)
    if n == 0:
        raise ValueError("cannot trace a molecule without atoms")
    placed = [False] * n
    placed[0] = True
    order, unfinished = [0], [0]
    focus, target, n_placed = [-1], [0], [0]
    while unfinished:
        k = int(rng.integers(len(unfinished)))
        f = unfinished[k]
        nxt = next((j for j in neighbours[f] if not placed[j]), -1)
        focus.append(f)
        target.append(nxt)
        n_placed.append(len(order))
        if nxt < 0:
            unfinished.pop(k)
        else:
            placed[nxt] = True
            order.append(nxt)
            unfinished.append(nxt)
    if len(order) != n:
        raise ValueError(
            f"the bond graph of this molecule is not connected ({len(order)} of {n} atoms "
            "reachable from the atom closest to the centre of mass); G-SchNet traces need "
            "connected molecules: drop disconnected ones in the data preparation"
        )
    as_arr = np.asarray
    return Trace(as_arr(order), as_arr(focus), as_arr(target), as_arr(n_placed))


_CLASS_OF = np.full(max(TYPE_CLASSES) + 1, -1, dtype=np.int64)
_CLASS_OF[list(TYPE_CLASSES)] = np.arange(len(TYPE_CLASSES))


def training_steps(
    mols: Molecules,
    systems: Sequence[int] | np.ndarray,
    seed: int,
    epoch: int,
    draw_random_samples: int = 0,
    dtype: torch.dtype | None = None,
) -> Batch:
    """All (or ``draw_random_samples``) steps of fresh traces of ``systems`` as one flat Batch.

    Targets (labels, not model inputs): ``next_type`` [S] atomic number of the new atom (stop =
    10), ``type_class`` [S] its class index, ``placement`` [S] bool (False = stop step),
    ``n_placed`` [S] placed atoms, ``distance`` [N] (Å) node → new atom (0 at stop steps),
    ``molecule`` [S] index of the step's molecule.
    """
    if draw_random_samples < 0:
        raise ValueError(
            f"draw_random_samples must be >= 0 (0 = all steps), got {draw_random_samples}"
        )
    focus_g, target_g, n_placed, order_start, mol_of, order_parts = [], [], [], [], [], []
    n_order = 0
    for k in np.asarray(systems, dtype=np.int64).tolist():
        rng = trace_rng(seed, epoch, k)
        try:
            tr = random_trace(mols.neighbours(k), rng)
        except ValueError as err:
            raise ValueError(f"molecule {k}: {err}") from err
        sel = np.arange(len(tr.target))
        if draw_random_samples and draw_random_samples < len(sel):
            sel = np.sort(rng.choice(len(sel), draw_random_samples, replace=False))
        a0 = int(mols.offsets[k])
        focus_g.append(np.where(tr.focus[sel] >= 0, tr.focus[sel] + a0, -1))
        target_g.append(np.where(tr.target[sel] >= 0, tr.target[sel] + a0, -1))
        n_placed.append(tr.n_placed[sel])
        order_start.append(np.full(len(sel), n_order))
        mol_of.append(np.full(len(sel), k))
        order_parts.append(tr.order + a0)
        n_order += len(tr.order)
    cat = np.concatenate
    focus, target, k_placed = cat(focus_g), cat(target_g), cat(n_placed)
    start, order = cat(order_start), cat(order_parts)
    # Nodes per step: [focus token, origin token, placed atoms order[:k]].
    n_nodes = 2 + k_placed
    step_start = np.cumsum(n_nodes) - n_nodes
    n_total = int(n_nodes.sum())
    positions = np.zeros((n_total, 3))
    numbers = np.empty(n_total, dtype=np.int64)
    numbers[step_start] = FOCUS_TOKEN
    numbers[step_start + 1] = ORIGIN_TOKEN
    has_focus = focus >= 0
    positions[step_start[has_focus]] = mols.positions[focus[has_focus]]
    # origin token at the centre of mass = the origin; first-step focus token there too
    step_of_atom = np.repeat(np.arange(len(k_placed)), k_placed)
    rank = np.arange(int(k_placed.sum())) - np.repeat(np.cumsum(k_placed) - k_placed, k_placed)
    atom = order[start[step_of_atom] + rank]
    node = step_start[step_of_atom] + 2 + rank
    positions[node] = mols.positions[atom]
    numbers[node] = mols.numbers[atom]
    placement = target >= 0
    next_type = np.where(placement, mols.numbers[np.maximum(target, 0)], STOP)
    step_of_node = np.repeat(np.arange(len(n_nodes)), n_nodes)
    new_pos = np.where(placement[:, None], mols.positions[np.maximum(target, 0)], 0.0)
    distance = np.linalg.norm(positions - new_pos[step_of_node], axis=1)
    distance[~placement[step_of_node]] = 0.0
    batch = steps_batch(numbers, positions, n_nodes, dtype=dtype)
    batch.targets = {
        "next_type": torch.from_numpy(next_type),
        "type_class": torch.from_numpy(_CLASS_OF[next_type]),
        "placement": torch.from_numpy(placement),
        "n_placed": torch.from_numpy(k_placed),
        "distance": torch.from_numpy(distance),
        "molecule": torch.from_numpy(cat(mol_of)),
    }
    return batch
