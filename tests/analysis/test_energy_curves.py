"""Scaled packs, model curves and displaced-atom contributions (docs/vimpnn.md §1, §7, §9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from deepatoms.analysis import energy_curves as ec
from deepatoms.analysis.curve_metrics import dense_grid, dsc
from deepatoms.data.edge_store import StoredEdges
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems
from deepatoms.data.scaling import scale_atoms
from deepatoms.models.io import LoadedModel

BONDS = GraphSpec(kind="bonds")
D, A = 0.8, 1.7  # Morse well depth (eV) and width (1/Å)


def _edges(pairs_per_system, shifts_per_system, types_per_system) -> StoredEdges:
    """Mirrored stored edges from per-system half lists (i, j), shifts and bond types."""
    idx, sh, ty, counts = [], [], [], []
    parts = zip(pairs_per_system, shifts_per_system, types_per_system, strict=True)
    for pairs, shifts, types in parts:
        p = np.asarray(pairs, np.int64).reshape(-1, 2)
        s = np.asarray(shifts, np.int64).reshape(-1, 3)
        idx.append(np.concatenate([p.T, p.T[::-1]], axis=1))
        sh.append(np.concatenate([s, -s]))
        ty.append(np.concatenate([types, types]).astype(np.int8))
        counts.append(2 * len(p))
    return StoredEdges(
        BONDS,
        np.concatenate([[0], np.cumsum(counts)]),
        np.concatenate(idx, axis=1),
        np.concatenate(sh),
        {"bond_type": np.concatenate(ty)},
    )


def _base_pack() -> PackedSystems:
    """A bent 3-atom molecule (bonds 0–1 single, 1–2 double) and a 1-atom simple cubic crystal
    (a = 2.5 Å, 6 edges to its own images), both at s = 1."""
    mol = Atoms("OCO", positions=[[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [1.9, 1.1, 0.3]])
    cub = Atoms("Cu", positions=[[0.3, 0.2, 0.1]], cell=np.eye(3) * 2.5, pbc=True)
    pack = PackedSystems.from_atoms([mol, cub], {"group": [7, 3], "element": ["", "Cu"]})
    pack.edges = _edges(
        [[(0, 1), (1, 2)], [(0, 0)] * 3],
        [np.zeros((2, 3)), np.eye(3)],
        [np.array([0, 1]), np.array([2, 2, 2])],
    )
    return pack


def _pair_distances(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


def test_scaled_pack_scales_distances_and_keeps_edges():
    base = _base_pack()
    scales = np.array([0.9, 1.0, 1.4])
    out = ec.scaled_pack(base, scales)
    assert len(out) == 6
    assert out.system_props["group"].tolist() == [7, 7, 7, 3, 3, 3]
    assert out.system_props["scale"].tolist() == [0.9, 1.0, 1.4] * 2
    assert out.system_props["element"].tolist() == ["", "", "", "Cu", "Cu", "Cu"]
    mol = base.positions[:3]
    for g, s in enumerate(scales):
        x = out.positions[out.offsets[g] : out.offsets[g + 1]]
        np.testing.assert_allclose(_pair_distances(x), s * _pair_distances(mol), atol=1e-12)
        np.testing.assert_allclose(x.mean(axis=0), mol.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(out.cell[g], base.cell[0])  # molecule: no cell
        np.testing.assert_allclose(out.cell[3 + g], s * base.cell[1], atol=1e-12)
        # periodic: fractional coordinates fixed
        frac = out.positions[out.offsets[3 + g]] @ np.linalg.inv(out.cell[3 + g])
        np.testing.assert_allclose(frac, [0.12, 0.08, 0.04], atol=1e-12)
        # same geometry as the shared scaling function
        for k in (0, 1):
            ref = scale_atoms(base.get_atoms(k), s)
            j = 3 * k + g
            np.testing.assert_allclose(
                out.positions[out.offsets[j] : out.offsets[j + 1]], ref.positions, atol=1e-12
            )
    # edges identical for every scaling (topology, shifts, bond types)
    for k, g in np.ndindex(2, 3):
        e = out.edges.subset([3 * k + g])
        b = base.edges.subset([k])
        np.testing.assert_array_equal(e.edge_index, b.edge_index)
        np.testing.assert_array_equal(e.edge_shift, b.edge_shift)
        np.testing.assert_array_equal(e.attrs["bond_type"], b.attrs["bond_type"])
    # bonded distances × s
    lengths = ec.mean_bond_length(out)
    np.testing.assert_allclose(lengths[3:], 2.5 * scales)
    np.testing.assert_allclose(lengths[:3], ec.mean_bond_length(base)[0] * scales)


def test_mean_bond_length_stored_edges_and_nearest_neighbours():
    base = _base_pack()
    d01, d12 = 1.2, np.linalg.norm([0.7, 1.1, 0.3])
    np.testing.assert_allclose(ec.mean_bond_length(base), [(d01 + d12) / 2, 2.5])
    base.edges = None  # nearest neighbour of each atom: 1.2, 1.2, d12
    np.testing.assert_allclose(ec.mean_bond_length(base), [(2 * d01 + d12) / 3, 2.5])


def test_base_structures_recover_the_stable_geometry():
    base = _base_pack()
    data = ec.scaled_pack(base, [1.3, 0.95, 1.1])
    data.system_props["energy"] = np.arange(6.0)
    rec = ec.base_structures(data.subset([0, 2, 4, 5]))
    assert rec.system_props["group"].tolist() == [3, 7]  # sorted ids
    assert rec.system_props["scale"].tolist() == [1.0, 1.0]
    assert "energy" not in rec.system_props and rec.system_props["element"].tolist() == ["Cu", ""]
    np.testing.assert_allclose(rec.positions, base.positions[[3, 0, 1, 2]], atol=1e-12)
    np.testing.assert_allclose(rec.cell[0], base.cell[1], atol=1e-12)
    np.testing.assert_array_equal(rec.edges.edge_index, base.edges.subset([1, 0]).edge_index)
    with pytest.raises(ValueError, match=r"groups \[99\] are not in the data"):
        ec.base_structures(data, [99])
    data.system_props.pop("scale")
    with pytest.raises(ValueError, match="no 'scale' column"):
        ec.base_structures(data)


class MorsePairModel(torch.nn.Module):
    """E = Σ_bonds V(d), V(d) = D (1 − e^{−A (d − r0)})² − D; c_v = ½ Σ_{bonds of v} V."""

    def __init__(self, r0: float) -> None:
        super().__init__()
        self.r0 = r0
        self.w = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, batch):
        d = batch.edge_vectors().norm(dim=1)
        v = self.w * (D * (1 - torch.exp(-A * (d - self.r0))) ** 2 - D)
        c = torch.zeros(batch.num_atoms, dtype=v.dtype).index_add_(0, batch.edge_index[0], v / 2)
        e = torch.zeros(batch.num_systems, dtype=v.dtype).index_add_(0, batch.batch, c)
        return {"energy": e, "contributions": c}


def _morse(d, r0):
    return D * (1 - np.exp(-A * (d - r0))) ** 2 - D


def _loaded(r0: float) -> LoadedModel:
    return LoadedModel(MorsePairModel(r0), BONDS, "energy", "eV", {"bond_types": ["single"]})


def _dimer() -> PackedSystems:
    pack = PackedSystems.from_atoms(
        [Atoms("H2", positions=[[0, 0, 0], [1.3, 0, 0]])], {"group": [0]}
    )
    pack.edges = _edges([[(0, 1)]], [np.zeros((1, 3))], [np.array([0])])
    return pack


def test_model_curves_match_the_analytic_curve_and_dsc(monkeypatch):
    monkeypatch.setattr(ec, "CHUNK_SYSTEMS", 50)  # several chunks of the 121-point grid
    base = ec.scaled_pack(_dimer(), [1.0, 1.0, 1.0])  # three identical curves
    grid = dense_grid()
    calls = []
    curves = ec.model_curves(_loaded(1.3 * 1.1), base, grid, 16, lambda d, t: calls.append(d))
    assert curves.shape == (3, len(grid))
    np.testing.assert_allclose(curves[1], _morse(1.3 * grid, 1.43), atol=1e-12)
    np.testing.assert_allclose(dsc(grid, curves), 0.1, atol=0.0025)
    assert calls[-1] == 3 * len(grid) and calls == sorted(calls)


def test_reference_curves_sorted_by_scale():
    data = ec.scaled_pack(_base_pack(), [1.2, 0.9])
    data.system_props["energy"] = np.array([1.0, 2.0, 3.0, 4.0])
    ref = ec.reference_curves(data, [7])
    assert ref[7][0].tolist() == [0.9, 1.2] and ref[7][1].tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="group 5 is not in the data"):
        ec.reference_curves(data, [5])


def test_bond_model_on_data_without_bonds_is_a_clear_error():
    pack = _dimer()
    pack.edges = None
    with pytest.raises(ValueError, match="stores no graph"):
        ec.model_curves(_loaded(1.3), pack, [1.0])


def test_match_bond_types_renumbers_by_name():
    pack = _base_pack()  # types 0, 1, 2 of the data vocabulary
    out, warnings = ec.match_bond_types(
        pack, ["double", "single", "metallic"], ["single", "double", "triple", "metallic"]
    )
    assert warnings == []
    assert out.edges.attrs["bond_type"].tolist() == [1, 0, 1, 0, 3, 3, 3, 3, 3, 3]
    same, _ = ec.match_bond_types(pack, ["a", "b", "c"], ["a", "b", "c"])
    assert same is pack
    _, warnings = ec.match_bond_types(pack, ["single"], None)
    assert "records no bond-type vocabulary" in warnings[0]
    with pytest.raises(ValueError, match=r"bond types \['metallic'\] that the model was not"):
        ec.match_bond_types(pack, ["single", "double", "metallic"], ["single", "double"])


def _chain() -> PackedSystems:
    """Linear H3 with bonds 0–1 and 1–2 of 1.0 Å; centroid at atom 1."""
    pack = PackedSystems.from_atoms([Atoms("H3", positions=[[-1, 0, 0], [0, 0, 0], [1, 0, 0]])])
    pack.edges = _edges([[(0, 1), (1, 2)]], [np.zeros((2, 3))], [np.array([0, 0])])
    return pack


def test_displaced_atom_contributions_exact():
    f = np.array([0.8, 1.0, 1.6])
    res = ec.displaced_atom_contributions(_loaded(1.0), _chain(), 2, f)
    np.testing.assert_allclose(res["distance"], f)  # atom 2 is 1 Å from the centroid
    v01, v12 = _morse(1.0, 1.0), _morse(f, 1.0)
    expected = np.stack([np.full(3, v01 / 2), (v01 + v12) / 2, v12 / 2], axis=1)
    np.testing.assert_allclose(res["contributions"], expected, atol=1e-12)
    np.testing.assert_allclose(res["energy"], expected.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(np.abs(res["normalised"]).sum(axis=1), 1.0)
    np.testing.assert_allclose(res["normalised"][1], [-0.25, -0.5, -0.25])  # both at −D
    mm = ec.displaced_atom_contributions(_loaded(1.0), _chain(), -1, f, normalise="minmax")
    assert mm["atom_index"] == 2
    np.testing.assert_allclose(mm["normalised"].min(axis=1), 0.0)
    np.testing.assert_allclose(mm["normalised"].max(axis=1), 1.0)


def test_displaced_frames_errors():
    with pytest.raises(ValueError, match="atom 1 sits at the cluster centroid"):
        ec.displaced_frames(_chain(), 1, [1.0])
    with pytest.raises(ValueError, match="out of range for a 3-atom cluster"):
        ec.displaced_frames(_chain(), 3, [1.0])
    with pytest.raises(ValueError, match="'sum_abs', 'minmax' or 'none'"):
        ec.normalise_contributions(np.ones((1, 2)), "max")


def test_cluster_pack_perceives_bonds_with_the_model_vocabulary():
    a = 3.61
    atoms = Atoms(
        "Cu4", positions=[[0, 0, 0], [a / 2, a / 2, 0], [a / 2, 0, a / 2], [0, a / 2, a / 2]]
    )
    loaded = LoadedModel(MorsePairModel(2.55), BONDS, "energy", "eV", {"bond_types": ["metallic"]})
    pack = ec.cluster_pack(atoms, loaded)
    assert len(pack.edges.edge_index[0]) == 12  # 6 nearest-neighbour pairs, both directions
    res = ec.displaced_atom_contributions(loaded, pack, 0, [1.0])
    np.testing.assert_allclose(res["energy"], 6 * _morse(a / np.sqrt(2), 2.55), atol=1e-12)
    loaded.meta = {}
    with pytest.raises(ValueError, match="records no bond-type vocabulary"):
        ec.cluster_pack(atoms, loaded)
    assert len(ec.cluster_pack(atoms, loaded, ["metallic"]).edges.edge_index[0]) == 12
