"""Impossible structures are refused, sparse but valid ones work, and MD/relax stop cleanly
when a simulation stops making sense (keeping what was written)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes
from ase.io import read, write

from cli_helpers import invoke, last_json, one_line
from deepatoms.core.errors import DeepatomsError
from deepatoms.simulate.calculator import Calculator
from deepatoms.simulate.md import run_md
from deepatoms.simulate.relax import relax
from deepatoms.workflows.evaluation import predict


@pytest.mark.parametrize(
    ("atoms", "reason"),
    [
        (Atoms("CH4", positions=np.full((5, 3), np.nan)), "positions are not finite"),
        (Atoms("H2", positions=[[0, 0, 0], [0, 0, 0]]), "0 Å apart"),
        (Atoms("Cu", cell=[0.3, 0.3, 0.3], pbc=True), "near zero"),
    ],
)
def test_impossible_structures_are_refused_everywhere(mol_model, tmp_path, atoms, reason):
    path = tmp_path / "bad.extxyz"
    write(path, atoms)
    for cmd in (["predict", mol_model, path], ["relax", mol_model, path],
                ["md", mol_model, path, "--out", tmp_path / "md.traj", "--steps", "2"]):  # fmt: skip
        res = invoke(*cmd, code=2)
        assert reason in one_line(res.stderr), cmd
        assert "Traceback" not in res.stdout + res.stderr
    assert not (tmp_path / "md.traj").exists()


def test_a_lone_atom_and_atoms_out_of_range_work(mol_model, tmp_path):
    calc = Calculator(mol_model.parent)  # a run folder works as well as a model file
    lone = Atoms("O", positions=[[0, 0, 0]])
    lone.calc = calc
    e_lone = lone.get_potential_energy()
    np.testing.assert_array_equal(lone.get_forces(), 0.0)
    far = Atoms("OO", positions=[[0, 0, 0], [30, 0, 0]])
    far.calc = calc
    # atoms beyond the cutoff do not interact: the energy is the sum of lone atoms
    assert far.get_potential_energy() == pytest.approx(2 * e_lone, rel=1e-5)
    np.testing.assert_array_equal(far.get_forces(), 0.0)
    res = predict(mol_model, [lone, far], progress=False)
    assert res["predicted"] == pytest.approx([e_lone, 2 * e_lone], rel=1e-5)
    write(tmp_path / "lone.xyz", Atoms("O", positions=[[0, 0, 0]]))
    relaxed = last_json(invoke("relax", mol_model, tmp_path / "lone.xyz", "--json").stdout)
    assert relaxed["converged"] and relaxed["steps"] == 0
    md = last_json(invoke("md", mol_model, "smiles:[Au]", "--out", tmp_path / "au.traj",
                          "--steps", "5", "--interval", "5", "--json", "--quiet").stdout)  # fmt: skip
    assert md["n_frames"] == 2


class _Spring(AseCalculator):
    """Two atoms joined by a spring of rest length 0 (they pass through each other), or a
    calculator that returns NaN after ``nan_after`` calls."""

    implemented_properties = ("energy", "forces")

    def __init__(self, k: float = 2.0, nan_after: int | None = None) -> None:
        super().__init__()
        self.k, self.nan_after, self.calls = k, nan_after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        d = self.atoms.positions[1] - self.atoms.positions[0]
        energy, f = 0.5 * self.k * float(d @ d), self.k * d
        if self.nan_after is not None and self.calls > self.nan_after:
            energy = float("nan")
        self.results = {"energy": energy, "forces": np.array([f, -f])}


def test_md_stops_when_atoms_collide_and_keeps_the_frames(tmp_path):
    pair = Atoms("OO", positions=[[0, 0, 0], [3, 0, 0]])
    traj = tmp_path / "pair.traj"
    with pytest.raises(DeepatomsError, match=r"MD stopped at step \d+: atoms collided: .*so far"):
        run_md(pair, _Spring(), temperature_K=1.0, timestep_fs=1.0, steps=500, interval=1,
               trajectory=traj, ensemble="nve")  # fmt: skip
    frames = read(traj, ":")
    assert 1 <= len(frames) < 500
    assert all(np.linalg.norm(f.positions[1] - f.positions[0]) >= 0.5 for f in frames)
    assert not list(tmp_path.glob(".*"))


def test_md_and_relax_stop_on_non_finite_energies(tmp_path):
    pair = Atoms("OO", positions=[[0, 0, 0], [1.5, 0, 0]])
    with pytest.raises(DeepatomsError, match=r"MD stopped at step \d+: the energy is nan"):
        run_md(pair, _Spring(nan_after=5), temperature_K=1.0, steps=50, interval=5)
    with pytest.raises(DeepatomsError, match=r"relaxation stopped at step \d+: the energy is nan"):
        relax(Atoms("OO", positions=[[0, 0, 0], [2.5, 0, 0]]), _Spring(k=0.01, nan_after=4),
              fmax=1e-6, steps=50)  # fmt: skip


def test_md_writes_extxyz_with_energies_and_forces(mol_model, tmp_path):
    out = tmp_path / "md.extxyz"
    res = last_json(invoke("md", mol_model, "ethanol", "--out", out, "--steps", "10",
                           "--interval", "5", "--json", "--quiet").stdout)  # fmt: skip
    frames = read(out, ":")
    assert len(frames) == res["n_frames"] == 3
    assert np.isfinite(frames[-1].get_forces()).all()
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_multi_frame_input_says_which_frame(mol_model, ethanol, tmp_path):
    frames = [ethanol.copy() for _ in range(3)]
    for k, f in enumerate(frames):
        f.rattle(0.02, seed=k)
    write(tmp_path / "three.xyz", frames)
    res = invoke("relax", mol_model, tmp_path / "three.xyz", "--steps", "3")
    assert "holds several frames; using the last one (" in one_line(res.stderr)
    assert "@INDEX" in one_line(res.stderr)


def test_predict_writes_forces_and_never_replaces_without_overwrite(mol_model, ethanol, tmp_path):
    write(tmp_path / "mols.xyz", [ethanol, ethanol])
    out = tmp_path / "pred.csv"
    invoke("predict", mol_model, tmp_path / "mols.xyz", "--out", out, "--quiet")
    rows = out.read_text().splitlines()
    forces = (tmp_path / "pred_forces.csv").read_text().splitlines()
    assert len(rows) == 3 and len(forces) == 1 + 2 * len(ethanol)
    assert forces[0].startswith("file,frame,atom,symbol,fx [eV/Å]")
    res = invoke("predict", mol_model, tmp_path / "mols.xyz", "--out", out, code=2)
    assert "already exists; pass --overwrite" in one_line(res.stderr)
    invoke("predict", mol_model, tmp_path / "mols.xyz", "--out", out, "--overwrite", "--quiet")
    res = invoke("predict", mol_model, tmp_path / "mols.xyz", "--out", tmp_path / "mols.xyz",
                 "--overwrite", code=2)  # fmt: skip
    assert "is one of the input files" in one_line(res.stderr)
    invoke("predict", mol_model, tmp_path / "mols.xyz", "--out", tmp_path / "p.extxyz", "--quiet")
    got = read(tmp_path / "p.extxyz", ":")
    calc = Calculator(mol_model)
    ethanol.calc = calc
    np.testing.assert_allclose(got[0].get_forces(), ethanol.get_forces(), atol=1e-4)


def test_relax_every_frame_with_at_colon(mol_model, ethanol, tmp_path):
    frames = [ethanol.copy() for _ in range(3)]
    for k, f in enumerate(frames):
        f.rattle(0.03, seed=k)
    write(tmp_path / "three.xyz", frames)
    out = tmp_path / "relaxed.extxyz"
    res = last_json(invoke("relax", mol_model, f"{tmp_path / 'three.xyz'}@:", "--out", out,
                           "--fmax", "0.05", "--json", "--quiet").stdout)  # fmt: skip
    assert res["n_frames"] == 3 and len(res["frames"]) == 3
    relaxed = read(out, ":")
    assert len(relaxed) == 3
    for r, a in zip(res["frames"], relaxed, strict=True):
        assert a.get_potential_energy() == pytest.approx(r["final_energy"])
        assert r["final_energy"] <= r["initial_energy"] + 1e-9
    every_other = last_json(invoke("relax", mol_model, f"{tmp_path / 'three.xyz'}@::2",
                                   "--json", "--quiet").stdout)  # fmt: skip
    assert every_other["n_frames"] == 2
    bad = invoke("relax", mol_model, f"{tmp_path / 'three.xyz'}@:", "--traj",
                 tmp_path / "t.traj", code=2)  # fmt: skip
    assert "--traj records one relaxation" in one_line(bad.stderr)
