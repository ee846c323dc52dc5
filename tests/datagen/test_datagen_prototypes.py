"""EMT benchmark set on prototypes: references, formation energies, files, resume, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from typer.testing import CliRunner

from deepatoms.cli import app
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.datagen.prototypes import (
    candidate_space,
    formation_energy_per_atom,
    generate_prototype_set,
)
from deepatoms.simulate.relax import relax

SMALL = {
    "elements": ["Cu", "Au"],
    "arities": [1, 2],
    "prototypes": ["A1", "A2", "A3", "L1_2", "B2"],
}  # 6 elemental + L1_2 (2 orders) + B2 (1) = 9 candidates


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("protoset") / "set"
    summary = generate_prototype_set(out, **SMALL)
    initial, meta_i = read_dataset(out / "initial.h5")
    relaxed, meta_r = read_dataset(out / "relaxed.h5")
    return summary, (initial, meta_i), (relaxed, meta_r)


def by_id(data) -> dict[str, int]:
    return {cid: k for k, cid in enumerate(data.system_props["candidate_id"].tolist())}


def test_elemental_references_are_the_lowest_of_fcc_bcc_hcp(small_set):
    summary, _, (relaxed, _) = small_set
    assert summary["complete"] and summary["n_written"] == 9 and summary["n_unconverged"] == 0
    ef = relaxed.system_props["formation_energy_per_atom"]
    k = by_id(relaxed)
    # EMT: fcc is the lowest for Au, hcp (slightly) for Cu; the lowest has E_f = 0 exactly
    assert summary["references"]["Au"]["structure"] == "A1"
    assert summary["references"]["Cu"]["structure"] == "A3"
    assert ef[k["A_cF4_225_a:A=Au"]] == 0.0
    assert ef[k["A_hP2_194_c:A=Cu"]] == 0.0
    assert 0.0 < ef[k["A_cF4_225_a:A=Cu"]] < 0.002  # fcc Cu about 1 meV/atom above hcp
    assert ef[k["A_cI2_229_a:A=Cu"]] > 0.02  # bcc far above
    unary = relaxed.system_props["n_elements"] == 1
    assert np.all(ef[unary] >= 0.0)


def test_cu3au_formation_energy_matches_an_independent_relaxation(small_set):
    summary, (initial, _), (relaxed, _) = small_set
    k = by_id(relaxed)["AB3_cP4_221_a_c:A=Au,B=Cu"]
    ef = relaxed.system_props["formation_energy_per_atom"][k]
    assert ef < -0.005  # EMT orders Cu3Au (L1_2)
    start = initial.get_atoms(k)
    res = relax(start, EMT(), fmax=0.01, steps=500, relax_cell=True)
    mu = {el: r["energy_per_atom"] for el, r in summary["references"].items()}
    expect = formation_energy_per_atom(res["final_energy"], start.get_chemical_symbols(), mu)
    assert ef == pytest.approx(expect, abs=1e-12)
    assert relaxed.system_props["energy"][k] == pytest.approx(res["final_energy"], abs=1e-12)
    assert initial.system_props["energy"][k] == pytest.approx(res["initial_energy"], abs=1e-12)
    assert relaxed.system_props["composition"][k] == "Cu3Au"


def test_initial_and_relaxed_files_share_rows_and_labels(small_set):
    _, (initial, meta_i), (relaxed, meta_r) = small_set
    for name in ("composition", "prototype", "assignment", "candidate_id", "n_elements",
                 "converged", "formation_energy_per_atom"):  # fmt: skip
        np.testing.assert_array_equal(initial.system_props[name], relaxed.system_props[name])
    assert set(initial.system_props["geometry"]) == {"initial"}
    assert set(relaxed.system_props["geometry"]) == {"relaxed"}
    assert relaxed.system_props["converged"].dtype == bool
    # initial rows are the rescaled prototypes of screening, exactly
    space = candidate_space(**SMALL)
    for k, cid in enumerate(initial.system_props["candidate_id"].tolist()):
        ref = space.from_id(cid).atoms()
        np.testing.assert_allclose(initial.get_atoms(k).positions, ref.positions, atol=1e-12)
        np.testing.assert_allclose(initial.cell[k], ref.cell.array, atol=1e-12)
    assert not np.allclose(initial.cell, relaxed.cell)  # cells did relax
    # provenance
    prov = meta_r["provenance"]
    assert meta_r["source"] == "deepatoms datagen prototypes"
    assert meta_r["units"]["formation_energy_per_atom"] == "eV/atom"
    assert prov["calculator"]["method"] == "EMT" and prov["calculator"]["package"] == "ase"
    assert prov["settings"]["fmax"] == 0.01 and prov["settings"]["seed"] == 0
    assert prov["settings"]["elements"] == ["Au", "Cu"]
    assert {"deepatoms", "ase", "pymatgen"} <= set(prov["versions"])
    assert prov["complete"] and prov["unconverged"] == [] and prov["geometry"] == "relaxed"
    assert meta_i["provenance"]["geometry"] == "initial"
    assert meta_i["provenance"]["references"] == prov["references"]


def test_resume_gives_the_same_files_as_one_run(small_set, tmp_path):
    _, (initial, _), (relaxed, _) = small_set
    out = tmp_path / "set"
    part = generate_prototype_set(out, limit=4, flush_every=3, **SMALL)
    assert part["n_new"] == 4 and not part["complete"]
    # an interruption between the two writes leaves initial.h5 one row longer
    r, meta = read_dataset(out / "relaxed.h5")
    write_dataset(out / "relaxed.h5", r.subset(np.arange(3)), meta)
    with pytest.raises(ValueError, match="--resume to continue"):
        generate_prototype_set(out, **SMALL)
    with pytest.raises(ValueError, match=r"settings differ \(fmax: 0\.01 \(saved\) vs 0\.02"):
        generate_prototype_set(out, resume=True, **{**SMALL, "fmax": 0.02})
    steps = []
    rest = generate_prototype_set(out, resume=True, progress=lambda d, t: steps.append(t), **SMALL)
    assert rest["n_skipped"] == 3 and rest["n_new"] == 6 and rest["complete"]
    assert steps and set(steps) == {6}  # references come from the file, not relaxed again
    for path, full in (("initial.h5", initial), ("relaxed.h5", relaxed)):
        got, _ = read_dataset(out / path)
        for name, values in full.system_props.items():
            np.testing.assert_array_equal(got.system_props[name], values, err_msg=name)
        np.testing.assert_array_equal(got.positions, full.positions)
        np.testing.assert_array_equal(got.cell, full.cell)
    done = generate_prototype_set(out, resume=True, **SMALL)
    assert done["n_new"] == 0 and done["n_skipped"] == 9


def test_an_interrupted_run_keeps_its_finished_chunks(small_set, tmp_path):
    _, _, (relaxed, _) = small_set
    out = tmp_path / "set"

    def stop_after_eight(done, total):
        if done >= 8:  # 6 elemental references, then more candidates
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_prototype_set(out, progress=stop_after_eight, **{**SMALL, "flush_every": 1})
    kept, meta = read_dataset(out / "relaxed.h5")
    assert len(kept) >= 2 and not meta["provenance"]["complete"]
    rest = generate_prototype_set(out, resume=True, **SMALL)
    assert rest["complete"] and rest["n_skipped"] == len(kept)
    got, _ = read_dataset(out / "relaxed.h5")
    np.testing.assert_array_equal(
        got.system_props["candidate_id"], relaxed.system_props["candidate_id"]
    )
    np.testing.assert_array_equal(
        got.system_props["formation_energy_per_atom"],
        relaxed.system_props["formation_energy_per_atom"],
    )


def test_unconverged_relaxations_are_kept_and_marked(tmp_path):
    args = {"elements": ["Cu", "Au"], "arities": [2], "prototypes": ["L1_2", "B2"]}
    summary = generate_prototype_set(tmp_path / "set", steps=1, **args)
    data, meta = read_dataset(tmp_path / "set" / "relaxed.h5")
    assert summary["n_written"] == len(data) == 3  # nothing dropped
    assert summary["n_unconverged"] >= 1
    unconverged = data.system_props["candidate_id"][~data.system_props["converged"]].tolist()
    assert sorted(unconverged) == sorted(summary["unconverged"])
    assert meta["provenance"]["unconverged"] == summary["unconverged"]
    assert np.all(data.system_props["relax_steps"] <= 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"elements": ["Cu", "Fe"]}, "EMT has no parameters for Fe"),
        ({"fmax": 0.0}, "fmax must be positive"),
        ({"steps": 0}, "steps must be a positive"),
        ({"optimizer": "newton"}, "unknown optimizer 'newton'"),
        ({"prototypes": ["L1_9"]}, "unknown prototype 'L1_9'"),
        ({"prototypes": ["L2_1"]}, "none of the prototypes L2_1 has 1 or 2 species sites"),
        ({"arities": [3]}, "arity 3 needs at least 3 elements"),
        ({"rescale": "vegard"}, "unknown rescale rule"),
        ({"rattle": -0.1}, "rattle must be zero or positive"),
        ({"resume": True, "overwrite": True}, "exclude each other"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_prototype_set(tmp_path / "x", **{**SMALL, **kwargs})
    assert not (tmp_path / "x" / "relaxed.h5").exists()


def test_rattle_is_seeded(tmp_path):
    args = {"elements": ["Cu", "Au"], "arities": [2], "prototypes": ["B2"], "rattle": 0.05}
    a = generate_prototype_set(tmp_path / "a", seed=1, **args)
    b = generate_prototype_set(tmp_path / "b", seed=1, **args)
    c = generate_prototype_set(tmp_path / "c", seed=2, **args)
    pos = [read_dataset(tmp_path / x / "relaxed.h5")[0].positions for x in "abc"]
    np.testing.assert_array_equal(pos[0], pos[1])
    assert not np.allclose(pos[0], pos[2])
    assert a["references"] == b["references"] and c["n_written"] == 1


def test_cli(tmp_path):
    runner = CliRunner()
    args = ["datagen", "prototypes", "--out", str(tmp_path / "set"), "--elements", "Cu,Au",
            "--arity", "1,2", "--prototypes", "A1,A2,A3,L1_0", "--no-progress"]  # fmt: skip
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.stdout + res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["n_written"] == 7 and summary["complete"]
    assert "elemental references (eV/atom): Au A1" in res.stdout
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "pass --resume" in flat(res.stderr)
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0 and "7 already there" in res.stdout
    res = runner.invoke(app, [*args[:-5], "--arity", "two"])
    assert res.exit_code == 2 and "--arity takes whole numbers" in flat(res.stderr)
    assert "Usage" in runner.invoke(app, ["datagen", "prototypes", "--help"]).stdout
