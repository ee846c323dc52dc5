"""Paper B dataset filters: noble gases, ΔH_f > 5 eV/atom, duplicate sets, and their chaining."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from deepatoms.data.filters import (
    NOBLE_GASES,
    apply_filters,
    crystal_filters,
    duplicate_mask,
    formation_energy_mask,
    noble_gas_mask,
)
from deepatoms.data.packed import PackedSystems


def _pack(formulas: list[str], **props) -> PackedSystems:
    atoms = [Atoms(f, cell=np.eye(3) * 4.0, pbc=True) for f in formulas]
    return PackedSystems.from_atoms(atoms, system_props=props)


def test_noble_gas_mask_drops_any_crystal_with_a_noble_gas():
    data = _pack(["NaCl", "Ar", "HeH", "Cu2", "XeF2", "KrO", "NeC", "RnCl", "SiO2"])
    mask = noble_gas_mask(data)
    assert mask.keep.tolist() == [True, False, False, True, False, False, False, False, True]
    assert mask.n_removed == 6 and "noble gas" in mask.reason
    assert NOBLE_GASES == (2, 10, 18, 36, 54, 86)


def test_noble_gas_mask_handles_empty_systems():
    data = PackedSystems(
        numbers=[18, 11],
        positions=np.zeros((2, 3)),
        offsets=[0, 0, 1, 1, 2],
        cell=np.zeros((4, 3, 3)),
        pbc=np.zeros((4, 3), dtype=bool),
    )
    assert noble_gas_mask(data).keep.tolist() == [True, False, True, True]


def test_formation_energy_mask_limit_is_inclusive():
    values = [4.9, 5.0, 5.0001, np.nan, -1.0, 12.0]
    assert formation_energy_mask(values).keep.tolist() == [True, True, False, True, True, False]
    assert formation_energy_mask(values, max_ev_per_atom=0.0).keep.tolist() == [
        False, False, False, True, True, False,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="one value per system"):
        formation_energy_mask(np.zeros((2, 2)))


def test_duplicate_mask_keeps_first_of_consistent_sets_and_drops_inconsistent_sets():
    formula = ["NaCl", "NaCl", "NaCl", "KBr", "KBr", "NaCl", "MgO"]
    proto = ["rs", "rs", "rs", "rs", "rs", "cscl", "rs"]
    # NaCl/rs: std 0.0327 <= 0.05 -> keep the first; KBr/rs: std 0.1 > 0.05 -> drop both
    values = [-2.0, -2.04, -1.96, -1.0, -1.2, -1.5, -3.0]
    mask = duplicate_mask(formula, proto, values)
    assert mask.keep.tolist() == [True, False, False, False, False, True, True]
    assert mask.details["n_duplicate_sets"] == 2
    assert mask.details["n_later_duplicates_dropped"] == 2
    assert mask.details["n_inconsistent_sets_dropped"] == 1
    assert mask.details["n_entries_in_inconsistent_sets"] == 2
    # a tighter tolerance makes the NaCl set inconsistent too: the whole set goes
    tight = duplicate_mask(formula, proto, values, std_tol=0.03)
    assert tight.keep.tolist() == [False, False, False, False, False, True, True]
    # a looser one keeps the first KBr entry
    loose = duplicate_mask(formula, proto, values, std_tol=0.2)
    assert loose.keep.tolist() == [True, False, False, True, False, True, True]


def test_duplicate_mask_std_both_ways_and_ddof():
    # population std of [0, 0.08] is 0.04 (keep first), of [0, 0.12] is 0.06 (drop both)
    assert duplicate_mask(["A", "A"], ["p", "p"], [0.0, 0.08]).keep.tolist() == [True, False]
    assert duplicate_mask(["A", "A"], ["p", "p"], [0.0, 0.12]).keep.tolist() == [False, False]
    # [0, 0.1]: ddof=0 -> 0.05, ddof=1 -> 0.0707; with a 0.06 tolerance the rule flips
    pair = (["A", "A"], ["p", "p"], [0.0, 0.1])
    assert duplicate_mask(*pair, std_tol=0.06).keep.tolist() == [True, False]
    assert duplicate_mask(*pair, std_tol=0.06, ddof=1).keep.tolist() == [False, False]


def test_duplicate_mask_prototype_labels():
    # space-group numbers stored as float match integer labels; different labels are distinct
    mask = duplicate_mask(["A", "A", "A"], np.array([225.0, 225, 221]), [0.0, 0.01, 1.0])
    assert mask.keep.tolist() == [True, False, True]
    by_formula = duplicate_mask(["A", "A", "B"], None, [0.0, 0.01, 1.0])
    assert by_formula.keep.tolist() == [True, False, True]
    # first entry in data order is the one kept
    assert duplicate_mask(["B", "A", "A"], None, [9, 2.0, 2.0]).keep.tolist() == [
        True, True, False,
    ]  # fmt: skip
    # NaN energies do not enter the standard deviation
    nan = duplicate_mask(["A", "A", "A"], None, [0.0, np.nan, 0.01])
    assert nan.keep.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="one formula, prototype and value per system"):
        duplicate_mask(["A", "A"], ["p"], [0.0, 0.0])


def test_apply_filters_runs_in_order_and_counts_per_reason():
    # rows: 0 NaCl ok, 1 NaCl ΔH_f 6 (removed before deduplication, so the NaCl set has one
    # member left), 2 ArF noble gas, 3/4 MgO consistent duplicates, 5 KBr
    data = _pack(
        ["NaCl", "NaCl", "ArF", "MgO", "MgO", "KBr"],
        reduced_formula=np.array(["NaCl", "NaCl", "ArF", "MgO", "MgO", "KBr"]),
        prototype=np.array(["rs"] * 6),
        energy=np.array([-2.0, 6.0, -0.5, -3.0, -3.01, -1.9]),
    )
    chain = crystal_filters(energy_column="energy", dedupe=True, prototype_column="prototype")
    kept, report = apply_filters(data, chain)
    assert report["kept_index"] == [0, 3, 5]
    assert list(kept.system_props["reduced_formula"]) == ["NaCl", "MgO", "KBr"]
    assert report["n_in"] == 6 and report["n_out"] == 3
    assert report["removed"] == {
        "contains a noble gas (He, Ne, Ar, Kr, Xe, Rn)": 1,
        "formation energy above 5 eV/atom": 1,
        "duplicate (same reduced composition and prototype)": 1,
    }
    assert sum(report["removed"].values()) == report["n_in"] - report["n_out"]
    # without the energy filter the NaCl pair (std 4 eV/atom) is dropped as a whole
    chain = crystal_filters(
        energy_column="energy", max_ev_per_atom=np.inf, dedupe=True, prototype_column="prototype"
    )
    _, report = apply_filters(data, chain)
    assert report["kept_index"] == [3, 5]


def test_crystal_filters_need_their_columns():
    data = _pack(["NaCl"], reduced_formula=np.array(["NaCl"]))
    with pytest.raises(ValueError, match="needs the formation-energy column"):
        crystal_filters(dedupe=True)
    with pytest.raises(KeyError, match="no per-system property 'energy'"):
        apply_filters(data, crystal_filters(energy_column="energy"))
    kept, report = apply_filters(data, crystal_filters(drop_noble_gases=False))
    assert len(kept) == 1 and report["removed"] == {}
