"""Prototype library, species sites and their symmetries, candidate enumeration and scaling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from ase.neighborlist import neighbor_list

from deepatoms.data.prototypes.library import (
    filter_prototypes,
    load_aflow_prototypes,
    load_cif_prototype,
    resolve_prototypes,
    select_prototypes,
)
from deepatoms.data.prototypes.rescale import atomic_radius, atomic_volume
from deepatoms.data.prototypes.substitution import (
    CandidateSpace,
    CompositionRequest,
    parse_assignment,
)


def protos(*names: str):
    return select_prototypes(load_aflow_prototypes(), names)


def one(name: str):
    (p,) = protos(name)
    return p


# -- library ----------------------------------------------------------------------------------
def test_aflow_library_names_sites_and_tags():
    lib = load_aflow_prototypes()
    assert len(lib) == 288
    assert len({p.name for p in lib}) == 288
    l12 = one("L1_2")
    assert l12.name == "AB3_cP4_221_a_c" and l12.tags["pearson"] == "cP4"
    assert l12.site_species == ("Au", "Cu") and l12.multiplicities == (1, 3)
    assert l12.anonymous_formula == "AB3" and l12.n_atoms == 4 and l12.n_sites == 2
    heusler = one("L2_1")
    assert heusler.site_species == ("Al", "Cu", "Mn") and heusler.anonymous_formula == "AB2C"
    # repeated AFLOW labels get the Strukturbericht designation appended
    assert {"AB_oP8_62_c_c-B16", "AB_oP8_62_c_c-B27"} <= {p.name for p in lib}


def test_selection_by_label_and_designation():
    assert one("L12") is one("L1_2") is one("AB3_cP4_221_a_c") is one("l1_2")
    names = [p.name for p in protos("B2", "A1", "B2")]  # library order, no repeats
    assert sorted(names) == ["AB_cP2_221_b_a", "A_cF4_225_a"]
    with pytest.raises(ValueError, match=r"unknown prototype 'L1_9'.*Did you mean"):
        protos("L1_9")
    assert len(resolve_prototypes(["aflow"])) == 288
    with pytest.raises(ValueError, match="no prototypes given"):
        resolve_prototypes([])


def test_site_symmetries_identify_equivalent_orders():
    assert one("B2").site_symmetries == ((0, 1), (1, 0))  # CsCl: AB = BA
    assert one("B1").site_symmetries == ((0, 1), (1, 0))
    assert one("L1_0").site_symmetries == ((0, 1), (1, 0))
    assert one("L1_2").site_symmetries == ((0, 1),)  # different multiplicities
    # L2_1 (A=Al 4b, B=Cu 8c, C=Mn 4a): the two fcc sublattices of multiplicity 1 swap
    assert one("L2_1").site_symmetries == ((0, 1, 2), (2, 1, 0))
    # perovskite: A and C have multiplicity 1 but are not equivalent (12- vs 6-coordinated)
    assert one("E2_1").site_symmetries == ((0, 1, 2),)


def test_filter_by_sites_and_atoms():
    lib = load_aflow_prototypes()
    binary_small = filter_prototypes(lib, n_sites=2, max_atoms=4)
    assert binary_small and all(p.n_sites == 2 and p.n_atoms <= 4 for p in binary_small)
    assert one("L1_2") in binary_small and one("D0_19") not in binary_small  # 8 atoms
    assert {p.n_sites for p in filter_prototypes(lib, n_sites={1, 3})} == {1, 3}
    with pytest.raises(ValueError, match="max_atoms must be a positive"):
        filter_prototypes(lib, max_atoms=0)


def test_cif_prototype_and_disordered_cif_refused(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.75, cubic=True)
    atoms.symbols[0] = "Au"
    write(tmp_path / "my_l12.cif", atoms)
    p = load_cif_prototype(tmp_path / "my_l12.cif")
    assert p.name == "my_l12" and p.site_species == ("Au", "Cu") and p.multiplicities == (1, 3)
    assert p.site_symmetries == ((0, 1),)
    (q,) = resolve_prototypes([str(tmp_path / "my_l12.cif")])
    assert q.site_species == ("Au", "Cu")

    from pymatgen.core import Lattice, Structure

    disordered = Structure(Lattice.cubic(3.7), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    disordered.to(filename=str(tmp_path / "alloy.cif"))
    with pytest.raises(ValueError, match="partially occupied sites"):
        load_cif_prototype(tmp_path / "alloy.cif")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cif_prototype(tmp_path / "missing.cif")


# -- candidates -------------------------------------------------------------------------------
def test_elements_and_arity_give_every_distinct_assignment():
    request = CompositionRequest.parse("Ni,Cu,Al", 2)
    assert request.elements == ("Al", "Cu", "Ni")
    space = CandidateSpace(protos("L1_2", "B2", "L1_0", "A1", "L2_1"), request)
    # L1_2: 3·2 ordered pairs; B2 and L1_0: AB = BA, 3 each; A1 and L2_1 have 1 / 3 sites
    assert space.counts == {"AB_tP2_123_a_d": 3, "AB_cP2_221_b_a": 3, "AB3_cP4_221_a_c": 6}
    cands = list(space)
    assert len(cands) == len(space) == 12
    ids = [c.candidate_id for c in cands]
    assert len(set(ids)) == 12
    assert "AB3_cP4_221_a_c:A=Al,B=Cu" in ids and "AB3_cP4_221_a_c:A=Cu,B=Al" in ids
    assert "AB_cP2_221_b_a:A=Al,B=Cu" in ids and "AB_cP2_221_b_a:A=Cu,B=Al" not in ids
    l12 = space.from_id("AB3_cP4_221_a_c:A=Au,B=Cu")
    assert l12.composition == "Cu3Au" and sorted(l12.atoms().get_chemical_symbols()) == [
        "Au", "Cu", "Cu", "Cu"
    ]  # fmt: skip

    ternary = CandidateSpace(protos("L2_1", "C1_b"), CompositionRequest.parse("Al,Cu,Ni,Pd", 3))
    # 4 triples × 3!/2 distinct orders on each prototype
    assert len(ternary) == len(list(ternary)) == 2 * 4 * 3


def test_stoichiometry_and_formula_requests():
    space = CandidateSpace(
        protos("L1_2", "B2", "D0_3", "C11_b"),
        CompositionRequest.parse("Cu,Au", stoichiometry="A3B"),
    )
    assert set(space.counts) == {"AB3_cP4_221_a_c", "AB3_cF16_225_a_bc"}
    assert {c.composition for c in space} == {"Cu3Au", "CuAu3"}

    request = CompositionRequest.parse(formulas=["CuAu", "Cu6Au2"])
    space = CandidateSpace(protos("L1_2", "B2", "D0_3", "C11_b", "L1_0"), request)
    got = sorted((c.composition, c.candidate_id) for c in space)
    assert got == [
        ("Cu3Au", "AB3_cF16_225_a_bc:A=Au,B=Cu"),
        ("Cu3Au", "AB3_cP4_221_a_c:A=Au,B=Cu"),
        ("CuAu", "AB_cP2_221_b_a:A=Au,B=Cu"),
        ("CuAu", "AB_tP2_123_a_d:A=Au,B=Cu"),
    ]
    assert len(space) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"elements": "Cu,Au", "formulas": "CuAu"}, "either formulas"),
        ({"elements": "Cu,Xy"}, "unknown element 'Xy'"),
        ({"elements": "Cu,Au", "arity": 3}, "arity 3 needs at least 3 elements"),
        ({"elements": "Cu,Au", "arity": 0}, "positive whole numbers"),
        ({"elements": "Cu,Au", "stoichiometry": "AAB"}, "cannot read stoichiometry"),
        ({"elements": "Cu,Au,Ni", "arity": 2, "stoichiometry": "ABC"}, "does not fit arity"),
        ({"formulas": "Cu0.5Au0.25"}, "whole-number amounts"),
        ({}, "no elements given"),
    ],
)
def test_bad_requests_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CompositionRequest.parse(**kwargs)


def test_assignment_round_trip_and_errors():
    l12 = one("L1_2")
    assert parse_assignment("B=Cu,A=Au", l12) == ("Au", "Cu")
    with pytest.raises(ValueError, match="does not name the sites A,B"):
        parse_assignment("A=Au", l12)
    space = CandidateSpace([l12], CompositionRequest.parse("Cu,Au"))
    with pytest.raises(ValueError, match="unknown prototype"):
        space.from_id("B2:A=Cu,B=Au")


def test_chunks_pack_the_candidate_structures():
    space = CandidateSpace(protos("L1_2", "B2", "D0_19"), CompositionRequest.parse("Al,Cu,Au"))
    chunks = list(space.chunks(4))
    assert [len(c) for c, _ in chunks] == [4, 4, 4, 3] and len(space) == 15
    cands = [c for cs, _ in chunks for c in cs]
    assert [c.candidate_id for c in cands] == [c.candidate_id for c in space]
    for cs, data in chunks:
        for k, cand in enumerate(cs):
            atoms = data.get_atoms(k)
            ref = cand.atoms()
            np.testing.assert_array_equal(atoms.numbers, ref.numbers)
            np.testing.assert_allclose(atoms.positions, ref.positions, atol=1e-12)
            np.testing.assert_allclose(atoms.cell.array, ref.cell.array)
            assert atoms.pbc.all()
    with pytest.raises(ValueError, match="chunk size must be a positive"):
        next(space.chunks(0))


# -- cell scale -------------------------------------------------------------------------------
def test_volume_rule_is_vegard_on_atomic_volumes():
    assert atomic_volume("Cu") == pytest.approx(3.61**3 / 4)
    assert atomic_volume("Fe") == pytest.approx(2.87**3 / 2)
    assert atomic_volume("Si") == pytest.approx(5.43**3 / 8)
    space = CandidateSpace(protos("L1_2", "A1", "A3"), CompositionRequest.parse("Cu,Au", [1, 2]))
    cu3au = space.from_id("AB3_cP4_221_a_c:A=Au,B=Cu").atoms()
    assert cu3au.get_volume() == pytest.approx(3 * atomic_volume("Cu") + atomic_volume("Au"))
    assert cu3au.cell.lengths()[0] == pytest.approx(3.7393, abs=1e-3)
    fcc = space.from_id("A_cF4_225_a:A=Cu").atoms()
    assert fcc.get_volume() == pytest.approx(3.61**3 / 4)  # the ASE reference lattice
    hcp = space.from_id("A_hP2_194_c:A=Au").atoms()
    assert hcp.get_volume() / len(hcp) == pytest.approx(atomic_volume("Au"))
    # the uniform scale keeps the prototype's shape (ratios of lengths, angles)
    proto = one("A3")
    np.testing.assert_allclose(
        hcp.cell.cellpar()[3:], proto.structure().lattice.parameters[3:], atol=1e-9
    )


def test_contact_rule_makes_the_closest_pair_touch():
    assert atomic_radius("Cu") == pytest.approx(3.61 / math.sqrt(2) / 2)
    space = CandidateSpace(
        protos("B2", "A1", "A4"), CompositionRequest.parse("Cu,Au", [1, 2]), rescale="contact"
    )
    fcc = space.from_id("A_cF4_225_a:A=Cu").atoms()
    diamond = space.from_id("A_cF8_227_a:A=Cu").atoms()
    b2 = space.from_id("AB_cP2_221_b_a:A=Au,B=Cu").atoms()
    for atoms, nearest in (
        (fcc, 2 * atomic_radius("Cu")),
        (diamond, 2 * atomic_radius("Cu")),  # an open structure stays open
        (b2, atomic_radius("Cu") + atomic_radius("Au")),
    ):
        d = neighbor_list("d", atoms, 4.0)
        assert d.min() == pytest.approx(nearest, rel=1e-9)
    none = CandidateSpace(protos("B2"), CompositionRequest.parse("Cu,Au"), rescale="none")
    np.testing.assert_allclose(next(iter(none)).cell, one("B2").cell)
    with pytest.raises(ValueError, match="unknown rescale rule"):
        CandidateSpace(protos("B2"), CompositionRequest.parse("Cu,Au"), rescale="vegard")
