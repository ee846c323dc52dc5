"""Geometry scaling and the Augmented-QM9 generator (docs/vimpnn.md §8): exact scaling, fixed
bonds, xTB labels with electronic-temperature retries, failures, resume."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.calculator import CalculationFailed
from ase.calculators.emt import EMT

import deepatoms.simulate.reference as calculators
from deepatoms.data.dataset import read_dataset
from deepatoms.data.scaling import parse_scales, scale_atoms
from deepatoms.datagen.scaled_qm9 import XtbFailed, generate_scaled_qm9, xtb_label


def _pair_distances(pos: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pos[:, None] - pos[None], axis=-1)


@pytest.mark.parametrize("s", [0.9, 1.0333, 1.5])
def test_molecule_scaling_keeps_centroid_and_scales_every_distance(s):
    eth = molecule("CH3CH2OH")
    eth.positions += [1.0, -2.0, 0.5]  # centroid away from the origin
    out = scale_atoms(eth, s)
    np.testing.assert_allclose(out.positions.mean(0), eth.positions.mean(0), atol=1e-12)
    np.testing.assert_allclose(
        _pair_distances(out.positions), s * _pair_distances(eth.positions), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(scale_atoms(out, 1 / s).positions, eth.positions, atol=1e-12)


def test_periodic_scaling_scales_the_cell_with_fixed_fractions():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.rattle(0.05, seed=1)
    out = scale_atoms(cu, 1.2)
    np.testing.assert_allclose(out.cell.array, 1.2 * cu.cell.array)
    np.testing.assert_allclose(out.get_scaled_positions(), cu.get_scaled_positions(), atol=1e-12)
    with pytest.raises(ValueError, match="positive finite number"):
        scale_atoms(cu, 0.0)


def test_parse_scales_grid_and_errors():
    np.testing.assert_allclose(
        np.round(parse_scales("0.9:1.5:10"), 4),
        [0.9, 0.9667, 1.0333, 1.1, 1.1667, 1.2333, 1.3, 1.3667, 1.4333, 1.5],
    )
    np.testing.assert_array_equal(parse_scales("1.1, 0.9,1"), [1.1, 0.9, 1.0])
    np.testing.assert_array_equal(parse_scales("1:1:1"), [1.0])
    for bad, msg in [
        ("0.9:1.5:0", "count must be at least 1"),
        ("0.9:1.5:x", "whole number"),
        ("-1,1", "positive finite number"),
        ("1.5:0.9:3", "hi must exceed lo"),
        ("1,1", "repeat"),
        ("0.9:1.5", "lo:hi:n"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_scales(bad)


class _FailsBelow(EMT):
    """EMT that fails like an unconverged SCF below an electronic temperature."""

    def __init__(self, t_el: float, limit: float) -> None:
        super().__init__()
        self.t_el, self.limit = t_el, limit

    def calculate(self, *args, **kwargs):
        if self.t_el < self.limit:
            raise CalculationFailed("SCF not converged in 250 iterations")
        super().calculate(*args, **kwargs)


def _fake_make(limit: float):
    def make(name, atoms=None, **settings):
        return _FailsBelow(settings["electronic_temperature"], limit), {}

    return make


def test_xtb_label_retries_at_higher_electronic_temperature():
    h2o = molecule("H2O")
    energy, forces, t_el = xtb_label(h2o, make=_fake_make(1000.0))
    assert t_el == 1000.0 and forces.shape == (3, 3) and np.isfinite(energy)
    assert xtb_label(h2o, make=_fake_make(2000.0))[2] == 5000.0
    with pytest.raises(XtbFailed, match=r"300 K: SCF not converged.*5000 K"):
        xtb_label(h2o, make=_fake_make(1e9))


def test_real_xtb_scan_has_its_minimum_near_s_1():
    hcn = molecule("HCN")
    grid = parse_scales("0.9:1.5:10")
    energies = [xtb_label(scale_atoms(hcn, s))[0] for s in grid]
    assert round(grid[int(np.argmin(energies))], 4) in (0.9667, 1.0333)


@pytest.fixture(scope="module")
def scaled_set(tmp_path_factory):
    """QM9 molecules 4 and 5 (C2H2, HCN; index 4, 5) at three scalings, GFN2-xTB."""
    out = tmp_path_factory.mktemp("sq") / "aug.h5"
    summary = generate_scaled_qm9(out, molecules=2, first=3, scales="0.9,1.0,1.2", seed=1)
    return summary, *read_dataset(out)


def test_generator_writes_labels_bonds_and_metadata(scaled_set):
    summary, data, meta = scaled_set
    assert summary["complete"] and summary["n_samples"] == 6 and summary["n_failures"] == 0
    sp = data.system_props
    np.testing.assert_array_equal(sp["qm9_index"], [4, 4, 4, 5, 5, 5])
    np.testing.assert_array_equal(sp["group"], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(sp["scale"], [0.9, 1.0, 1.2] * 2)
    np.testing.assert_array_equal(sp["smiles"], ["C#C"] * 3 + ["C#N"] * 3)
    np.testing.assert_array_equal(sp["electronic_temperature"], [300.0] * 6)
    assert sp["energy"].dtype == np.float64 and data.atom_props["forces"].shape == (21, 3)
    assert set(sp["split"][[0, 3]]) <= {"train", "val", "test"}
    assert meta["bond_types"] == ["single", "double", "triple"] and meta["bond_rule"] == "rdkit"
    assert meta["units"]["energy"] == "eV" and meta["failures"] == []
    prov = meta["provenance"]
    assert prov["labeller"]["method"] == "GFN2-xTB" and prov["labeller"]["settings"]["threads"] == 1
    assert prov["settings"]["scales"] == [0.9, 1.0, 1.2]
    # the label of the s = 1 sample is the plain xTB single point of the QM9 geometry
    s1 = data.get_atoms(1)
    assert sp["energy"][1] == pytest.approx(xtb_label(s1)[0], abs=1e-8)


def test_scaled_copies_share_the_s1_bonds_and_scale_their_lengths(scaled_set):
    _, data, _ = scaled_set
    e = data.edges
    for group in range(2):
        ks = [3 * group + k for k in range(3)]
        blocks = [e.edge_index[:, e.offsets[k] : e.offsets[k + 1]] for k in ks]
        types = [e.attrs["bond_type"][e.offsets[k] : e.offsets[k + 1]] for k in ks]
        for b, t in zip(blocks[1:], types[1:], strict=True):
            np.testing.assert_array_equal(b, blocks[0])
            np.testing.assert_array_equal(t, types[0])
        assert 2 in types[0]  # the triple bond
        lengths = []
        for k, b in zip(ks, blocks, strict=True):
            pos = data.get_atoms(k).positions
            lengths.append(np.linalg.norm(pos[b[0]] - pos[b[1]], axis=1))
        np.testing.assert_allclose(lengths[0], 0.9 * lengths[1], rtol=1e-12)
        np.testing.assert_allclose(lengths[2], 1.2 * lengths[1], rtol=1e-12)


def test_unconverged_points_are_retried_or_recorded(tmp_path, monkeypatch):
    # HCN: fails below 1000 K at s = 1.2 (retried), at every temperature at s = 1.5 (skipped)
    real = calculators.make_calculator

    def make(name, atoms=None, **settings):
        calc, prov = real(name, atoms, **settings)
        t_el = settings["electronic_temperature"]
        original = calc.calculate

        def calculate(atoms=None, *args, **kwargs):
            span = _pair_distances(atoms.positions).max()  # 2.22 Å at s = 1
            if (span > 2.5 and t_el < 1000) or span > 3.0:
                raise CalculationFailed("SCF not converged")
            return original(atoms, *args, **kwargs)

        calc.calculate = calculate
        return calc, prov

    monkeypatch.setattr(calculators, "make_calculator", make)
    out = tmp_path / "fail.h5"
    summary = generate_scaled_qm9(out, molecules=1, first=4, scales="1.0,1.2,1.5")
    data, meta = read_dataset(out)
    np.testing.assert_array_equal(data.system_props["scale"], [1.0, 1.2])
    np.testing.assert_array_equal(data.system_props["electronic_temperature"], [300.0, 1000.0])
    assert summary["retried_points"] == 1 and summary["n_failures"] == 1
    (failure,) = meta["failures"]
    assert failure["group"] == 0 and failure["scale"] == 1.5 and failure["qm9_index"] == 5
    assert "5000 K" in failure["reason"]


def test_interrupted_run_continues_and_refuses_other_settings(tmp_path):
    out = tmp_path / "resume.h5"
    kw = {"molecules": 3, "first": 0, "scales": "0.95,1.05", "flush_every": 1}

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_scaled_qm9(out, progress=stop_after_two, **kw)
    part, meta = read_dataset(out)
    assert meta["provenance"]["n_bases_done"] == 2 and not meta["provenance"]["complete"]
    np.testing.assert_array_equal(part.system_props["group"], [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"settings differ \(scales"):
        generate_scaled_qm9(out, **{**kw, "scales": "0.9,1.1"})
    summary = generate_scaled_qm9(out, **kw)
    assert (summary["n_skipped"], summary["n_new"], summary["complete"]) == (2, 1, True)
    full, _ = read_dataset(out)
    fresh = generate_scaled_qm9(tmp_path / "fresh.h5", **kw)
    ref, _ = read_dataset(tmp_path / "fresh.h5")
    assert fresh["n_samples"] == len(full) == 6
    np.testing.assert_array_equal(full.system_props["split"], ref.system_props["split"])
    np.testing.assert_allclose(full.system_props["energy"], ref.system_props["energy"], atol=1e-8)
    np.testing.assert_array_equal(full.edges.edge_index, ref.edges.edge_index)
    # complete: nothing left to do
    again = generate_scaled_qm9(out, **kw)
    assert again["n_new"] == 0 and again["n_samples"] == 6
