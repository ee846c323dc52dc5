"""``deepatoms design`` and ``deepatoms data qm9-smiles / polymers`` as a user calls them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli_helpers import last_json, one_line
from deepatoms.cli import app as APP


def invoke(*args, code: int = 0):
    res = CliRunner().invoke(APP, [str(a) for a in args])
    assert res.exit_code == code, f"{args}: exit {res.exit_code}\n{res.stdout}\n{res.stderr}"
    return res


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def qm9_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("qm9") / "qm9.csv"
    invoke("data", "qm9-smiles", path, "--limit", 30, "--seed", 1, "--quiet")
    return path


def test_data_qm9_smiles(tmp_path):
    path = tmp_path / "qm9.csv"
    res = invoke("data", "qm9-smiles", path, "--limit", 30, "--seed", 1, "--quiet", "--json")
    summary = last_json(res.stdout)
    assert summary["n"] == 30 and summary["split"] == {"train": 24, "val": 3, "test": 3}
    table = rows(path)
    assert list(table[0]) == ["string", "homo", "lumo", "gap", "qm9_index", "split"]
    assert len(table) == 30
    lumo = np.array([float(r["lumo"]) for r in table])
    assert summary["window_fractions"]["lumo"] == np.mean((lumo >= -1) & (lumo <= 0))
    assert "design windows: lumo [-1, 0] eV" in one_line(res.stdout)
    res = invoke("data", "qm9-smiles", path, "--limit", 30, code=2)
    assert "already exists; pass --overwrite" in one_line(res.stderr)


def test_data_polymers(tmp_path):
    from deepatoms.grammar.cfg import load_grammar

    path = tmp_path / "poly.csv"
    res = invoke("data", "polymers", path, "--n", 40, "--seed", 2, "--synthetic-labels", "--json")
    assert last_json(res.stdout)["n"] == 40 and "SYNTHETIC" in res.stdout
    table = rows(path)
    assert list(table[0]) == ["string", "homo", "lumo", "gap", "opt", "split"]
    grammar = load_grammar("polymer")
    for r in table:
        assert grammar.derivation_to_string(grammar.parse(r["string"])) == r["string"]
    invoke("data", "polymers", tmp_path / "plain.csv", "--n", 5)
    assert list(rows(tmp_path / "plain.csv")[0]) == ["string", "split"]


def test_design_baselines(qm9_csv, tmp_path):
    out = tmp_path / "baselines.json"
    res = invoke("design", "baselines", "--data", qm9_csv, "--property", "lumo", "--property",
                 "gap", "--model", "ridge", "--model", "rf", "--folds", 3, "--out", out,
                 "--rf-max-features", "0.333", "--quiet", "--json")  # fmt: skip
    summary = last_json(res.stdout)
    assert summary["rf_max_features"] == 0.333
    assert summary["n_rows"] == 30 and summary["n_features"] == 2048
    assert set(summary["results"]) == {"ridge", "rf"}
    assert len(summary["results"]["rf"]["gap"]["fold_mae"]) == 3
    assert json.loads(out.read_text())["results"] == summary["results"]
    mae = round(1000 * summary["results"]["ridge"]["lumo"]["mae"])
    assert f"| Linear | Morgan fingerprint | {mae} |" in res.stdout
    assert "| Model | Input feature | ε_LUMO | ε_gap |" in res.stdout


def test_design_baselines_polymer_features(tmp_path):
    path = tmp_path / "poly.csv"
    invoke("data", "polymers", path, "--n", 30, "--synthetic-labels")
    res = invoke("design", "baselines", "--data", path, "--features", "polymer", "--property",
                 "opt", "--model", "ridge", "--folds", 3, "--quiet", "--json")  # fmt: skip
    assert last_json(res.stdout)["n_features"] == 599
    assert "| Linear | Fixed length |" in res.stdout


# -- design run with a tiny (untrained) grammar VAE and regressors ------------------------------
@pytest.fixture(scope="module")
def vae_files(tmp_path_factory) -> tuple[Path, Path]:
    from deepatoms.grammar.cfg import load_grammar
    from deepatoms.models.grammar_vae import GrammarVAE
    from deepatoms.models.latent_regressor import LatentRegressors
    from deepatoms.models.model_file import write_model_file
    from model_helpers import save_grammar_vae

    folder = tmp_path_factory.mktemp("vae")
    grammar = load_grammar("smiles")
    torch.manual_seed(3)
    model = GrammarVAE({"n_rules": grammar.n_rules, "max_len": 40, "latent_dim": 4,
                        "hidden": 16, "dense": 8})  # fmt: skip
    save_grammar_vae(folder / "model.pt", model, grammar)
    regs = LatentRegressors({"latent_dim": 4, "hidden": (8, 8, 4), "properties": ["lumo", "gap"]})
    regs.set_statistics({"lumo": -0.5, "gap": 5.0}, {"lumo": 1.0, "gap": 1.0})
    write_model_file(folder / "regressors.pt", regs, "grammar_vae")
    return folder, folder / "regressors.pt"


def test_design_run_writes_ranked_candidates_and_structures(vae_files, tmp_path):
    from ase.io import read

    run, regs = vae_files
    out, xyz = tmp_path / "cand.csv", tmp_path / "cand.extxyz"
    args = ["design", "run", run, "--regressors", regs, "--window", "lumo=-1:0", "--window",
            "gap=4:6", "--samples", 600, "--iterations", 3, "--top", 5, "--chunk", 250,
            "--seed", 0]  # fmt: skip
    res = invoke(*args, "--out", out, "--xyz", xyz, "--json")
    summary = last_json(res.stdout)
    assert summary["targets"] == {"lumo": -0.5, "gap": 5.0}  # window midpoints
    assert 1 <= len(summary["history"]) <= 3 and summary["history"][0]["population"] == 600
    assert "ICM 1/3: decoded 600" in one_line(res.stderr)
    table = rows(out)
    assert 1 <= len(table) <= 5 and summary["n_candidates"] == len(table)
    assert list(table[0]) == ["rank", "string", "canonical", "lumo_pred", "gap_pred",
                              "objective", "valid", "in_lumo", "in_gap", "in_all_windows"]  # fmt: skip
    objective = [float(r["objective"]) for r in table]
    assert objective == sorted(objective)
    for r in table:
        expected = (float(r["lumo_pred"]) + 0.5) ** 2 + (float(r["gap_pred"]) - 5.0) ** 2
        assert float(r["objective"]) == pytest.approx(expected, rel=1e-9)
        assert r["valid"] == "1"
        assert r["in_lumo"] == str(int(-1 <= float(r["lumo_pred"]) <= 0))
    assert len({r["canonical"] for r in table}) == len(table)
    frames = read(xyz, ":")
    assert summary["n_embedded"] == len(frames) and summary["n_embedded"] >= 1
    assert [f.info["index"] for f in frames] == sorted(f.info["index"] for f in frames)
    for frame in frames:  # the structure belongs to the CSV row of its rank
        row = table[frame.info["index"] - 1]
        from deepatoms.design.candidates import embed_smiles

        assert frame.get_chemical_formula() == embed_smiles(row["string"]).get_chemical_formula()
    # the best candidate never comes back once it is a training string
    training = tmp_path / "train.csv"
    training.write_text(f"string\n{table[0]['string']}\n")
    args.remove("--regressors")
    args.remove(regs)  # default: RUN/regressors.pt
    res = invoke(*args, "--out", tmp_path / "again.csv", "--training", training, "--json")
    again = [r["canonical"] for r in rows(tmp_path / "again.csv")]
    assert table[0]["canonical"] not in again
    assert last_json(res.stdout)["history"][0]["training"] >= 1
    # without --training: the run's training_strings.txt (written by `deepatoms vae train`)
    copy = tmp_path / "run_copy"
    copy.mkdir()
    for name in ("model.pt", "regressors.pt"):
        (copy / name).write_bytes((run / name).read_bytes())
    (copy / "training_strings.txt").write_text(f"{table[0]['string']}\n")
    args[2] = copy
    res = invoke(*args, "--out", tmp_path / "third.csv", "--json")
    assert last_json(res.stdout)["training"] == str(copy / "training_strings.txt")
    assert table[0]["canonical"] not in [r["canonical"] for r in rows(tmp_path / "third.csv")]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "lumo"], "--target 'lumo': expected NAME=VALUE, e.g. --target lumo=-0.5"),
        (["--target", "lumo=low"], "--target 'lumo=low': 'low' is not a number (eV)"),
        (["--window", "lumo=-1"], "--window 'lumo=-1': expected NAME=LO:HI"),
        (["--window", "gap=6:4"], "LO (6.0) must not exceed HI (4.0)"),
        ([], "give the design targets: --target NAME=VALUE"),
        (["--target", "homo=-7"], "has no regressor for ['homo']; it predicts ['lumo', 'gap']"),
        (["--target", "lumo=-0.5", "--samples", 0], "--samples must be at least 1"),
        (["--target", "lumo=-0.5", "--device", "tpu9"], "--device 'tpu9' is not a torch device"),
    ],
)
def test_design_run_errors(vae_files, tmp_path, extra, message):
    run, regs = vae_files
    res = invoke("design", "run", run, "--regressors", regs, "--out", tmp_path / "c.csv",
                 *extra, code=2)  # fmt: skip
    assert message in one_line(res.stderr)
    assert not (tmp_path / "c.csv").exists()


def test_missing_files_are_named(vae_files, tmp_path):
    run, regs = vae_files
    res = invoke("design", "run", tmp_path / "nope", "--regressors", regs, "--out",
                 tmp_path / "c.csv", "--target", "lumo=-0.5", code=2)  # fmt: skip
    assert f"model {tmp_path / 'nope'} does not exist" in one_line(res.stderr)
    res = invoke("design", "run", run, "--regressors", tmp_path / "r.pt", "--out",
                 tmp_path / "c.csv", "--target", "lumo=-0.5", code=2)  # fmt: skip
    assert f"regressors file {tmp_path / 'r.pt'} does not exist" in one_line(res.stderr)
    assert "vae regress" in res.stderr
    model_only = tmp_path / "run"  # a run folder without regressors.pt
    model_only.mkdir()
    (model_only / "model.pt").write_bytes((run / "model.pt").read_bytes())
    res = invoke("design", "run", model_only / "model.pt", "--out", tmp_path / "c.csv",
                 "--target", "lumo=-0.5", code=2)  # fmt: skip
    assert f"regressors file {model_only / 'regressors.pt'} does not exist" in one_line(res.stderr)
    res = invoke("design", "baselines", "--data", tmp_path / "x.csv", "--property", "lumo",
                 code=2)  # fmt: skip
    assert "x.csv does not exist" in one_line(res.stderr)
    res = invoke("design", "baselines", "--data", tmp_path / "x.csv", "--property", "lumo",
                 "--rf-max-features", "most", code=2)  # fmt: skip
    assert "--rf-max-features 'most': give a fraction in (0, 1], sqrt or log2" in res.stderr
    res = invoke("design", "check", tmp_path / "c.csv", "--out", tmp_path / "o",
                 "--xtb-orbitals", code=2)  # fmt: skip
    assert "candidates file" in one_line(res.stderr)


# -- design check -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def property_models(tmp_path_factory) -> dict[str, Path]:
    from deepatoms.data.neighbors import GraphSpec
    from deepatoms.models.registry import build_model
    from model_helpers import save_atomistic

    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for seed, prop in enumerate(("lumo", "gap")):
        torch.manual_seed(seed)
        cfg = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "property": prop,
               "readout": "mean"}  # fmt: skip
        paths[prop] = folder / f"{prop}.pt"
        save_atomistic(paths[prop], build_model(cfg), GraphSpec(), "eV")
    return paths


def test_design_check_candidates_vs_reference(property_models, tmp_path):
    cands = tmp_path / "cand.csv"
    cands.write_text("rank,string\n1,CCO\n2,C(C\n3,C#N\n4,CC=O\n")
    ref = tmp_path / "ref.csv"
    ref.write_text(
        "string,lumo,gap,split\nC,-0.5,5.0,train\nCC,0.5,5.0,train\nCO,-0.2,7.0,train\n"
        "CN,-0.1,4.5,test\n"
    )
    out = tmp_path / "check"
    models = [f"--model={k}={v}" for k, v in property_models.items()]
    res = invoke("design", "check", cands, *models, "--reference", ref, "--top", 3,
                 "--out", out, "--quiet", "--json")  # fmt: skip
    metrics = last_json(res.stdout)
    assert metrics["candidates"]["status"] == {"invalid": 1, "ok": 2}
    assert metrics["candidates"]["models"]["n"] == 3
    assert metrics["candidates"]["models"]["n_evaluated"] == 2
    assert metrics["reference"]["models"]["n"] == 3  # the train rows
    # the reference table's own labels, train rows: lumo hits C, CO; gap hits C, CC; both: C
    for part in ("sample", "all"):  # the sample is the whole split here
        fractions = metrics["reference_labels"][part]["fraction"]
        assert fractions == {"lumo": 2 / 3, "gap": 2 / 3, "all": 1 / 3}
    assert json.loads((out / "metrics.json").read_text())["candidates"] == metrics["candidates"]
    table = rows(out / "candidates.csv")
    assert [r["smiles"] for r in table] == ["CCO", "C(C", "C#N"]
    lumo = np.array([float(r["lumo"]) if r["lumo"] else np.nan for r in table])
    gap = np.array([float(r["gap"]) if r["gap"] else np.nan for r in table])
    hits = int(np.sum((lumo >= -1) & (lumo <= 0) & (gap >= 4) & (gap <= 6)))
    assert metrics["candidates"]["models"]["hits"]["all"] == hits
    assert len(rows(out / "reference.csv")) == 3
    ref_all = metrics["reference"]["models"]["fraction"]["all"]
    ratio = metrics["enrichment"]["models"]  # null in JSON when the reference rate is 0
    if ref_all > 0:
        assert ratio == metrics["candidates"]["models"]["fraction"]["all"] / ref_all
    else:
        assert ratio is None
    text = one_line(res.stdout)
    assert "hit rates (property models):" in text and "reference (all) n 3" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "nothing to evaluate with: give --model NAME=PATH"),
        (["--model", "lumo"], "--model 'lumo': expected NAME=VALUE"),
        (["--model", "lumo=x.pt"], "window(s) ['gap'] have no property model"),
    ],
)
def test_design_check_errors(tmp_path, extra, message):
    cands = tmp_path / "cand.csv"
    cands.write_text("string\nCCO\n")
    res = invoke("design", "check", cands, "--out", tmp_path / "o", *extra, code=2)
    assert message in one_line(res.stderr)


def test_design_check_refuses_non_smiles(property_models, tmp_path):
    cands = tmp_path / "cand.csv"
    cands.write_text("string\nA1-H OCH3-S+D4-H F-O S S\n")
    models = [f"--model={k}={v}" for k, v in property_models.items()]
    res = invoke("design", "check", cands, *models, "--out", tmp_path / "o", "--quiet", code=2)
    assert "is a valid SMILES; design check evaluates SMILES candidates" in one_line(res.stderr)
