"""G-SchNet training traces and partial-molecule batches (docs/gschnet.md §6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from deepatoms.data.bonds import pack_with_bonds
from deepatoms.generate.steps import partial_batch
from deepatoms.generate.traces import (
    VALIDATION_EPOCH,
    prepare_molecules,
    random_trace,
    trace_rng,
    training_steps,
)

NAMES = ["CH3CH2OH", "C6H6", "CH4", "H2O", "CH3CN", "CH3COOH"]


def _centred_sorted(atoms: Atoms) -> Atoms:
    atoms = atoms.copy()
    atoms.positions -= atoms.get_center_of_mass()
    return atoms[np.argsort(np.linalg.norm(atoms.positions, axis=1), kind="stable")]


@pytest.fixture(scope="module")
def mols():
    data, _ = pack_with_bonds([_centred_sorted(molecule(n)) for n in NAMES])
    return prepare_molecules(data)


def _bonded(mols, k: int) -> set[tuple[int, int]]:
    return {(a, b) for a, nb in enumerate(mols.neighbours(k)) for b in nb}


def test_prepared_file_is_left_as_it_is(mols):
    assert (mols.n_recentred, mols.n_reordered) == (0, 0)
    ethanol = _centred_sorted(molecule("CH3CH2OH"))
    np.testing.assert_allclose(mols.positions[: len(ethanol)], ethanol.positions, atol=1e-12)


def test_every_atom_placed_once_and_finished_once(mols):
    for k in range(len(mols)):
        n = int(mols.offsets[k + 1] - mols.offsets[k])
        for epoch in range(5):
            tr = random_trace(mols.neighbours(k), trace_rng(0, epoch, k))
            assert len(tr.target) == 2 * n
            assert sorted(tr.order.tolist()) == list(range(n))
            placed = tr.target[tr.target >= 0]
            assert placed.tolist() == tr.order.tolist()
            stops = tr.focus[tr.target < 0]
            assert sorted(stops.tolist()) == list(range(n))  # each atom finished exactly once
            assert tr.target[-1] == -1 and (tr.target == -1).sum() == n


def test_targets_are_bonded_to_the_focus_and_closest_to_the_origin(mols):
    for k in range(len(mols)):
        bonds = _bonded(mols, k)
        s = int(mols.offsets[k])
        r = np.linalg.norm(mols.positions[s : int(mols.offsets[k + 1])], axis=1)
        tr = random_trace(mols.neighbours(k), trace_rng(3, 1, k))
        assert tr.focus[0] == -1 and tr.target[0] == 0 and r[0] == r.min()  # closest to the COM
        for t in range(1, len(tr.target)):
            f, placed = tr.focus[t], set(tr.order[: tr.n_placed[t]].tolist())
            assert f in placed  # the focus is a placed atom
            free = [b for (a, b) in bonds if a == f and b not in placed]
            if tr.target[t] < 0:
                assert free == []
            else:
                assert (f, tr.target[t]) in bonds
                assert r[tr.target[t]] == min(r[b] for b in free)


def test_traces_differ_between_epochs_and_are_reproducible(mols):
    def trace(epoch: int, seed: int = 0):
        tr = random_trace(mols.neighbours(5), trace_rng(seed, epoch, 5))  # acetic acid
        return tuple(tr.focus.tolist())

    assert trace(2) == trace(2)
    assert len({trace(e) for e in range(6)}) > 1
    assert len({trace(0, seed) for seed in range(6)}) > 1
    a = training_steps(mols, [1, 5], seed=4, epoch=7)
    b = training_steps(mols, [5, 1], seed=4, epoch=7)  # batch order does not matter
    assert torch.equal(a.targets["next_type"][a.targets["molecule"] == 5],
                       b.targets["next_type"][b.targets["molecule"] == 5])  # fmt: skip


def test_step_batch_nodes_and_distance_labels(mols):
    """Water (O first, closest to the COM): the first steps of every trace, exactly."""
    b = training_steps(mols, [3], seed=0, epoch=0)
    tgt = b.targets
    assert b.num_systems == 6 and tgt["placement"].sum() == 3
    pos = mols.positions[mols.offsets[3] : mols.offsets[4]]
    # step 0: tokens only, both at the centre of mass; the label is O and its distances.
    assert b.n_atoms[0] == 2 and b.numbers[:2].tolist() == [10, 11]
    assert tgt["next_type"][0] == 8 and tgt["type_class"][0] == 3
    np.testing.assert_allclose(b.positions[:2].numpy(), 0.0)
    np.testing.assert_allclose(tgt["distance"][:2].numpy(), np.linalg.norm(pos[0]))
    # step 1: focus O, placed O, target an H bonded to it; distances from all three nodes.
    assert b.n_atoms[1] == 3 and b.numbers[2:5].tolist() == [10, 11, 8]
    np.testing.assert_allclose(b.positions[2].numpy(), pos[0], atol=1e-6)
    h = pos[1]
    want = np.linalg.norm(np.stack([pos[0], np.zeros(3), pos[0]]) - h, axis=1)
    np.testing.assert_allclose(tgt["distance"][2:5].numpy(), want, atol=1e-12)
    assert tgt["next_type"][1] == 1 and tgt["n_placed"].tolist()[:2] == [0, 1]
    stops = ~tgt["placement"]
    assert (tgt["type_class"][stops] == 5).all() and (tgt["next_type"][stops] == 10).all()
    node_stop = stops[b.batch]
    assert (tgt["distance"][node_stop] == 0).all()
    assert b.edge_index.shape[1] == int((b.n_atoms * (b.n_atoms - 1)).sum())


def test_draw_random_samples_keeps_k_steps_of_the_same_trace(mols):
    full = training_steps(mols, [0], seed=1, epoch=2)
    part = training_steps(mols, [0], seed=1, epoch=2, draw_random_samples=5)
    assert part.num_systems == 5 and full.num_systems == 18

    # every kept step is one of the full trace's steps (same placed count, same label)
    def keys(b):
        return set(
            zip(b.targets["n_placed"].tolist(), b.targets["next_type"].tolist(), strict=True)
        )

    assert keys(part) <= keys(full)
    val = training_steps(mols, [0], seed=1, epoch=VALIDATION_EPOCH, draw_random_samples=50)
    assert val.num_systems == 18


def test_unprepared_file_is_centred_and_sorted_on_the_fly(mols):
    raw = [molecule(n) for n in NAMES]
    for a in raw:
        a.positions += [1.0, -2.0, 0.5]
    raw[1] = raw[1][::-1]  # benzene, reversed atom order
    data, _ = pack_with_bonds(raw)
    fixed = prepare_molecules(data)
    assert fixed.n_recentred == len(NAMES)
    assert fixed.n_reordered >= 1
    np.testing.assert_allclose(
        np.sort(np.linalg.norm(fixed.positions, axis=1)),
        np.sort(np.linalg.norm(mols.positions, axis=1)),
        atol=1e-9,
    )
    for k in range(len(NAMES)):
        r = np.linalg.norm(fixed.positions[fixed.offsets[k] : fixed.offsets[k + 1]], axis=1)
        assert np.all(np.diff(r) >= -1e-12)
        assert len(_bonded(fixed, k)) == len(_bonded(mols, k))


def test_bad_inputs_are_explained():
    data, _ = pack_with_bonds([molecule("H2O")])
    data.edges = None
    with pytest.raises(ValueError, match="no stored bond graph"):
        prepare_molecules(data)
    sulfur, _ = pack_with_bonds([molecule("SH2")])
    with pytest.raises(ValueError, match=r"Z = \[16\]"):
        prepare_molecules(sulfur)
    two = Atoms("OH2OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0],
                                     [9, 0, 0], [9.96, 0, 0], [8.76, 0.93, 0]])  # fmt: skip
    apart, _ = pack_with_bonds([two])
    with pytest.raises(ValueError, match=r"molecule 0: .*not connected"):
        training_steps(prepare_molecules(apart), [0], seed=0, epoch=0)


def test_partial_batch_orders_tokens_first_and_connects_all_pairs():
    b = partial_batch(
        [np.zeros((0, 3)), np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.5, 0]])],
        [[], [6, 1, 8]],
        focus_positions=[[0.0, 0, 0], [1.0, 0, 0]],
        origin_positions=[[0.0, 0, 0], [0.2, 0.3, 0]],
    )
    assert b.n_atoms.tolist() == [2, 5]
    assert b.numbers.tolist() == [10, 11, 10, 11, 6, 1, 8]
    assert b.batch.tolist() == [0, 0, 1, 1, 1, 1, 1]
    assert b.edge_index.shape[1] == 2 + 20 and b.mirrored_edges
    pairs = set(map(tuple, b.edge_index.T.tolist()))
    assert pairs == {
        (i, j) for s, e in ((0, 2), (2, 7)) for i in range(s, e) for j in range(s, e) if i != j
    }
    with pytest.raises(ValueError, match="one of each per step"):
        partial_batch([np.zeros((1, 3))], [[6]], np.zeros((2, 3)), np.zeros((1, 3)))
