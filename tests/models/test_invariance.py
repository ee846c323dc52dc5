"""Physics checks for every energy model (docs/architecture.md: invariances, finite-difference forces), float64.

Rotation/translation/permutation invariance, force equivariance, batching, supercell
consistency, self-pair exclusion, isolated atoms and forces = finite differences of the energy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from f64 import F64, float64_default

from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models import build_model

ALL = GraphSpec("all", None)
RC = 4.5  # graph cutoff (Å) for periodic systems; NaCl shells at 2.82, 3.99, 4.88 Å

FAMILIES = {
    "schnet": {
        "name": "schnet",
        "n_atom_basis": 12,
        "n_interactions": 2,
        "rbf": {"n_rbf": 16, "stop": RC},
        "cutoff_fn": "cosine",
        "cutoff": RC,
    },
    "dtnn": {"name": "dtnn", "n_atom_basis": 10, "n_factors": 8, "n_interactions": 3},
    "nmp_edge": {"name": "nmp_edge", "n_atom_basis": 10, "n_interactions": 3},
}


def make_model(family: str, readout: str = "sum", aggregation: str = "sum", seed: int = 0):
    """A float64 model with every parameter perturbed, so zero-initialised layers are non-trivial."""
    cfg = {**FAMILIES[family], "readout": readout, "aggregation": aggregation}
    torch.manual_seed(seed)
    with float64_default():
        model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.head.set_statistics(mean=-0.7, std=1.3, atomref={1: -0.5, 8: -2.0, 11: -1.0})
    return model.eval()


def predict(model, atoms, graph: GraphSpec, forces: bool = True):
    """Energies [B], contributions [N] and autograd forces −∂E/∂R [N, 3] (float64 numpy)."""
    batch = Batch.from_atoms(atoms, graph, dtype=F64)
    batch.positions.requires_grad_(True)
    out = model(batch)
    energy = out["energy"]
    f = None
    if forces:
        (g,) = torch.autograd.grad(energy.sum(), batch.positions)
        f = (-g).numpy()
    return energy.detach().numpy(), out["contributions"].detach().numpy(), f


def rattled(atoms: Atoms, seed: int, stdev: float = 0.05) -> Atoms:
    atoms = atoms.copy()
    atoms.rattle(stdev=stdev, seed=seed)
    return atoms


def ethanol() -> Atoms:
    return rattled(molecule("CH3CH2OH"), 1)


def nacl() -> Atoms:
    return rattled(bulk("NaCl", "rocksalt", a=5.64), 2, stdev=0.08)


def copper() -> Atoms:
    return bulk("Cu", "fcc", a=3.61)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def rel_close(a, b, rtol: float, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.abs(b).max(), 1e-300)
    err = np.abs(a - b).max()
    assert err <= rtol * scale, f"{what}: max |Δ| = {err:.3e}, scale {scale:.3e}"


families = pytest.mark.parametrize("family", sorted(FAMILIES))


# -- rigid motion ---------------------------------------------------------------------------------
@families
def test_rotation_translation_invariance_molecule(family):
    model = make_model(family)
    atoms = ethanol()
    e, c, f = predict(model, atoms, ALL)
    assert abs(e[0]) > 1e-3 and np.abs(f).max() > 1e-3, "outputs must be non-trivial"
    rng = np.random.default_rng(5)
    for _ in range(2):
        rot = random_rotation(rng)
        moved = atoms.copy()
        moved.positions = atoms.positions @ rot.T + rng.normal(scale=3.0, size=3)
        e2, c2, f2 = predict(model, moved, ALL)
        rel_close(e2, e, 1e-10, "energy")
        rel_close(c2, c, 1e-10, "contributions")
        rel_close(f2, f @ rot.T, 1e-10, "forces rotate with the molecule")


@families
def test_rotation_invariance_periodic(family):
    model = make_model(family, readout="mean", aggregation="mean")
    atoms = nacl()
    graph = GraphSpec("cutoff", RC)
    e, _, f = predict(model, atoms, graph)
    rot = random_rotation(np.random.default_rng(11))
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    moved.positions = atoms.positions @ rot.T + np.array([0.3, -1.2, 0.7])
    e2, _, f2 = predict(model, moved, graph)
    rel_close(e2, e, 1e-10, "energy")
    rel_close(f2, f @ rot.T, 1e-10, "forces")


# -- permutation ----------------------------------------------------------------------------------
@families
def test_permutation_invariance(family):
    model = make_model(family)
    atoms = ethanol()
    e, c, f = predict(model, atoms, ALL)
    perm = np.random.default_rng(3).permutation(len(atoms))
    e2, c2, f2 = predict(model, atoms[perm], ALL)
    rel_close(e2, e, 1e-10, "energy")
    rel_close(c2, c[perm], 1e-10, "contributions are permuted with the atoms")
    rel_close(f2, f[perm], 1e-10, "forces are permuted with the atoms")


# -- batching -------------------------------------------------------------------------------------
@families
def test_batch_equals_systems_alone(family):
    model = make_model(family, aggregation="sum")
    graph = GraphSpec("cutoff", RC)
    systems = [
        rattled(molecule("H2O"), 4),
        nacl(),
        rattled(molecule("CH4"), 5),
        copper(),
        rattled(molecule("NH3"), 6),
    ]
    e, c, f = predict(model, systems, graph)
    start = 0
    for k, atoms in enumerate(systems):
        ek, ck, fk = predict(model, atoms, graph)
        n = len(atoms)
        rel_close(e[k : k + 1], ek, 1e-12, f"energy of system {k}")
        rel_close(c[start : start + n], ck, 1e-12, f"contributions of system {k}")
        rel_close(f[start : start + n], fk, 1e-12, f"forces of system {k}")
        start += n


# -- supercells -----------------------------------------------------------------------------------
@families
@pytest.mark.parametrize("mode", ["mean", "sum"])
@pytest.mark.parametrize("structure", ["nacl", "cu"])
def test_supercell_consistency(family, mode, structure):
    """2×2×2 supercell: identical per-atom contributions; same (mean) or 8× (sum) energy."""
    model = make_model(family, readout=mode, aggregation=mode)
    prim = nacl() if structure == "nacl" else copper()
    sc = prim.repeat((2, 2, 2))  # atoms ordered cell block by cell block
    graph = GraphSpec("cutoff", RC)
    e1, c1, _ = predict(model, prim, graph, forces=False)
    e8, c8, _ = predict(model, sc, graph, forces=False)
    rel_close(c8, np.tile(c1, 8), 1e-10, "per-atom contributions")
    rel_close(e8, e1 * (8 if mode == "sum" else 1), 1e-10, "energy")
    if mode == "sum":
        rel_close(e8 / len(sc), e1 / len(prim), 1e-10, "energy per atom")


# -- graphs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "graph", [GraphSpec("all", None), GraphSpec("cutoff", 2.0), GraphSpec("cutoff", RC)]
)
def test_neighbour_list_has_no_self_pairs_but_keeps_self_images(graph):
    tri = Atoms(
        "CuAu",
        positions=[[0.1, 0.2, 0.3], [1.5, 1.1, 0.9]],
        cell=[[2.9, 0.0, 0.0], [0.8, 2.7, 0.0], [0.4, 0.6, 3.1]],
        pbc=True,
    )
    slab = copper().repeat((1, 1, 2))
    slab.pbc = (True, True, False)
    systems = [ethanol(), copper(), tri, slab, molecule("H2")]
    if graph.cutoff is None:
        systems = [a for a in systems if not a.pbc.any()]
    batch = Batch.from_atoms(systems, graph, dtype=F64)
    i, j = batch.edge_index
    zero_shift = (batch.edge_shift == 0).all(dim=1)
    assert not ((i == j) & zero_shift).any(), "a (i, i, S = 0) self-pair is in the list"
    half = i.shape[0] // 2  # mirrored: edge e + E/2 is edge e reversed
    assert torch.equal(i[:half], j[half:]) and torch.equal(j[:half], i[half:])
    assert torch.equal(batch.edge_shift[:half], -batch.edge_shift[half:])
    d = batch.distances()
    assert (d > 1e-6).all()
    if graph.cutoff is not None:
        assert (d <= graph.cutoff + 1e-9).all()
    if graph.cutoff is not None and graph.cutoff > 2.6:  # Cu–Cu 2.55 Å
        # one-atom fcc cell: every neighbour is a periodic image of the atom itself
        cu = batch.batch[i] == 1
        assert cu.any() and (i[cu] == j[cu]).all() and not zero_shift[cu].any()


@families
def test_isolated_atom_gets_zero_mean_message(family):
    """Under a cutoff graph an isolated atom receives nothing: no NaN, same as the atom alone."""
    model = make_model(family, readout="mean", aggregation="mean")
    graph = GraphSpec("cutoff", RC)
    cell = np.eye(3) * 15.0
    sys_ = Atoms("NaClO", positions=[[1, 1, 1], [3.7, 1.2, 0.9], [9, 9, 9]], cell=cell, pbc=True)
    lone = Atoms("O", positions=[[9, 9, 9]], cell=cell, pbc=True)
    batch = Batch.from_atoms(sys_, graph, dtype=F64)
    assert not (batch.edge_index == 2).any(), "the O atom must be isolated"
    e, c, f = predict(model, sys_, graph)
    assert np.isfinite(e).all() and np.isfinite(c).all() and np.isfinite(f).all()
    with torch.no_grad():
        x = model.representation(batch)
        x_lone = model.representation(Batch.from_atoms(lone, graph, dtype=F64))
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x[2], x_lone[0], rtol=1e-13, atol=1e-13)
    assert np.abs(f[2]).max() == 0.0
    # a molecule under a cutoff graph too
    mol = Atoms("HHO", positions=[[0, 0, 0], [0.74, 0, 0], [8, 0, 0]])
    e, c, f = predict(model, mol, graph)
    assert np.isfinite(e).all() and np.isfinite(f).all() and np.abs(f[2]).max() == 0.0


# -- forces vs finite differences -----------------------------------------------------------------
def _fd_forces(model, atoms: Atoms, graph: GraphSpec, h: float) -> np.ndarray:
    """Central differences −(E(R + h) − E(R − h)) / 2h; the graph is rebuilt for each geometry."""
    displaced = []
    for a in range(len(atoms)):
        for k in range(3):
            for sgn in (1.0, -1.0):
                moved = atoms.copy()
                moved.positions[a, k] += sgn * h
                displaced.append(moved)
    with torch.no_grad():
        e = model(Batch.from_atoms(displaced, graph, dtype=F64))["energy"].numpy()
    e = e.reshape(len(atoms), 3, 2)
    return -(e[..., 0] - e[..., 1]) / (2 * h)


@families
@pytest.mark.parametrize("system", ["molecule", "periodic"])
def test_forces_equal_finite_differences(family, system):
    """Autograd forces vs central differences with step h = 1e-4 Å.

    The O(h²) error of a plain central difference is ≈ 6e-7 relative for the narrow default
    Gaussians (σ = 0.1 Å in NMP-edge), too close to 1e-6 for a robust test, so the comparison uses
    the Richardson combination (4 D(h) − D(2h)) / 3 of the same central differences (O(h⁴)).
    The plain central difference must agree to 5e-6, the extrapolated one to 1e-8.
    """
    if system == "molecule":
        atoms, graph, mode = rattled(molecule("CH3OH"), 8), ALL, "sum"
    else:  # periodic: the edge vectors go through the cell shifts
        atoms, graph, mode = nacl().repeat((1, 1, 2)), GraphSpec("cutoff", RC), "mean"
        atoms.rattle(stdev=0.05, seed=9)
    model = make_model(family, readout="sum", aggregation=mode)
    _, _, f = predict(model, atoms, graph)
    assert np.abs(f).max() > 1e-2
    d1 = _fd_forces(model, atoms, graph, 1e-4)
    d2 = _fd_forces(model, atoms, graph, 2e-4)
    rel_close(f, d1, 5e-6, "autograd forces vs central differences")
    rel_close(f, (4 * d1 - d2) / 3, 1e-8, "autograd forces vs extrapolated central differences")
