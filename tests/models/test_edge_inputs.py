"""NMP-edge edge-input modes of Paper B §IV (none, sym, dist) and crystal-graph invariances."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from ase.build import bulk
from f64 import F64, float64_default

from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models.registry import build_model

CUT = GraphSpec("cutoff", 4.0)


def _model(edge_input: str, **kw):
    torch.manual_seed(0)
    with float64_default():
        model = build_model(
            {"name": "nmp_edge", "n_atom_basis": 12, "n_interactions": 2, "aggregation": "mean",
             "readout": "mean", "edge_input": edge_input, **kw}
        )  # fmt: skip
    return model.eval()


def _with_symmetry(batch: Batch, seed: int = 0) -> Batch:
    """Fake per-facet labels: random bits per pair, equal on both directions (mirrored list)."""
    n_pairs = batch.edge_index.shape[1] // 2
    bits = torch.from_numpy(np.random.default_rng(seed).integers(0, 2, (n_pairs, 9))).to(F64)
    return replace(batch, edge_attr={"symmetry": torch.cat([bits, bits])})


def _cell():
    atoms = bulk("NaCl", "rocksalt", a=5.0)
    atoms.rattle(0.05, seed=3)
    return atoms


def _predict(model, batch) -> float:
    with torch.no_grad():
        return float(model(batch)["energy"][0])


@pytest.mark.parametrize("mode", ["none", "sym"])
def test_position_free_modes_ignore_positions(mode):
    """With the same graph, moving atoms changes nothing: only topology (and labels) count."""
    model = _model(mode)
    batch = _with_symmetry(Batch.from_atoms(_cell(), CUT, dtype=F64))
    moved = replace(batch, positions=batch.positions + 0.3 * torch.randn_like(batch.positions))
    assert _predict(model, moved) == _predict(model, batch)
    dist = _model("dist")
    assert _predict(dist, moved) != pytest.approx(_predict(dist, batch), abs=1e-9)


def test_sym_mode_changes_only_when_a_label_flips():
    model = _model("sym")
    batch = _with_symmetry(Batch.from_atoms(_cell(), CUT, dtype=F64))
    base = _predict(model, batch)
    sym = batch.edge_attr["symmetry"].clone()
    n = sym.shape[0] // 2
    sym[0, 4] = sym[n, 4] = 1 - sym[0, 4]  # flip D1 on one facet, both directions
    flipped = replace(batch, edge_attr={"symmetry": sym})
    assert _predict(model, flipped) != pytest.approx(base, abs=1e-9)
    none = _model("none")
    assert _predict(none, flipped) == _predict(none, batch)


def test_sym_mode_without_labels_says_what_to_do():
    model = _model("sym")
    with pytest.raises(ValueError, match="voronoi"):
        model(Batch.from_atoms(_cell(), CUT, dtype=F64))


def test_sym_plus_dist_concatenates_both_inputs():
    model = _model("sym+dist")
    assert model.representation.edge_updates[0].l1.in_features == 2 * 12 + 151 + 9
    batch = _with_symmetry(Batch.from_atoms(_cell(), CUT, dtype=F64))
    assert np.isfinite(_predict(model, batch))


def test_mode_errors():
    with pytest.raises(ValueError, match="edge_input must be one of"):
        _model("angles")
    with pytest.raises(ValueError, match="same filter"):
        _model("none", use_edge_updates=False)


@pytest.mark.parametrize(
    "graph", [GraphSpec("knn", None, k=24), GraphSpec("cutoff", 4.0)], ids=["knn", "cutoff"]
)
def test_mean_readout_is_the_same_for_a_supercell(graph):
    """Materials: the 2x2x2 supercell has the same per-atom prediction (mean readout)."""
    model = _model("dist")
    cell = _cell()
    one = _predict(model, Batch.from_atoms(cell, graph, dtype=F64))
    eight = _predict(model, Batch.from_atoms(cell.repeat(2), graph, dtype=F64))
    assert eight == pytest.approx(one, rel=1e-10)


VORONOI = GraphSpec("voronoi", None, omega_cut=0.2)


@pytest.mark.parametrize("mode", ["none", "sym", "dist"])
def test_voronoi_supercell_gives_the_same_energy_per_atom(mode):
    """Paper B models on Voronoi graphs: a 2x2x2 supercell (the 8-fold covering graph) gives the
    same mean-readout prediction as the unit cell."""
    model = _model(mode)
    cell = bulk("NaCl", "rocksalt", a=5.0)
    cell.rattle(0.04, seed=2)
    one = Batch.from_atoms(cell, VORONOI, dtype=F64)
    eight = Batch.from_atoms(cell.repeat(2), VORONOI, dtype=F64)
    assert eight.edge_index.shape[1] == 8 * one.edge_index.shape[1]
    assert set(one.edge_attr) >= {"symmetry", "area", "solid_angle", "distance"}
    vec = one.edge_vectors()
    torch.testing.assert_close(one.edge_attr["distance"], vec.norm(dim=1))
    assert _predict(model, eight) == pytest.approx(_predict(model, one), rel=1e-10)


def test_fcc_and_hcp_differ_only_with_symmetry_labels():
    """Jørgensen 2019 thesis Ch. 3: both are 12-regular Voronoi graphs; the labels tell them apart."""
    fcc = bulk("Cu", "fcc", a=3.6, cubic=True)  # 4 atoms, 12 facets each
    hcp = bulk("Cu", "hcp", a=3.6 / np.sqrt(2), c=3.6 / np.sqrt(2) * np.sqrt(8 / 3)).repeat(
        (1, 1, 2)
    )  # 4 atoms, ideal c/a
    b_fcc = Batch.from_atoms(fcc, VORONOI, dtype=F64)
    b_hcp = Batch.from_atoms(hcp, VORONOI, dtype=F64)
    none, sym = _model("none"), _model("sym")
    assert _predict(none, b_fcc) == pytest.approx(_predict(none, b_hcp), rel=1e-12)
    assert _predict(sym, b_fcc) != pytest.approx(_predict(sym, b_hcp), rel=1e-6)
