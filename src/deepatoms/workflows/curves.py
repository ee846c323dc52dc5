"""``deepatoms curves``: energy curves of models on scaled data (docs/vimpnn.md §7, §9).

For each model, on the chosen samples (a split of the data's ``split`` column, or of a run's
``split.json``): MAE, MSE and RE as "mean (std)" over the labelled points; the DSC
|argmin_s Ê(s) − s_eq| as mean (std) over base structures, from dense model curves on a scaling
grid (step 0.005 over [0.9, 1.5]; only for data with more than one scale per group), in units of s
and in Å (× the mean bonded distance at s = 1); seconds per energy estimate; MAE per system size
and per element. Optionally the per-node contributions of a cluster whose atom K moves out of its
stable position (§9). Writes OUT/metrics.json, OUT/curves.csv (dense curves),
OUT/curves_<group>.png, OUT/error_vs_size.png and OUT/contributions_<model>.png (+ .csv).

:func:`curves_report` does the work (no printing); :func:`format_table` gives the table the
``curves`` command prints.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.analysis.curve_metrics import (
    dense_grid,
    dsc,
    dsc_summary,
    error_summary,
    errors_by_label,
    errors_by_size,
    reference_minima,
)
from deepatoms.analysis.energy_curves import (
    DEFAULT_FACTORS,
    check_curve_columns,
    check_graph,
    match_bond_types,
    timed,
)
from deepatoms.core.files import check_new_file
from deepatoms.core.progress import ProgressBar
from deepatoms.data.packed import PackedSystems

__all__ = ["curves_report", "format_table", "model_label", "pick_plot_groups", "select_samples"]


def model_label(path: Path, taken: Sequence[str] = ()) -> str:
    """Legend name of a model file: its run folder for ``…/model.pt``, else the file stem;
    made unique against ``taken`` with a ``-2``, ``-3`` … suffix."""
    path = Path(path)
    name = path.parent.name if path.name == "model.pt" and path.parent.name else path.stem
    base, k = name, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


def select_samples(
    data: PackedSystems,
    split: str = "test",
    split_file: Path | None = None,
    systems: Sequence[int] | None = None,
) -> np.ndarray:
    """Indices of the samples to score: ``split`` (train/val/test or ``all``) taken from
    ``split_file`` (a run's split.json) or else from the data's ``split`` column, restricted to
    the groups ``systems`` when given."""
    from deepatoms.data.splits import saved_split

    if split == "all":
        idx = np.arange(len(data))
    elif split_file is not None:
        idx = saved_split(split_file, split, len(data))
    elif "split" in data.system_props:
        column = np.asarray(data.system_props["split"]).astype(str)
        if split not in set(column.tolist()):
            raise ValueError(
                f"no sample has split {split!r}; the data's split column holds "
                f"{sorted(set(column.tolist()))} (or pass --split all)"
            )
        idx = np.flatnonzero(column == split)
    else:
        raise ValueError(
            "the data has no 'split' column: pass --run RUN_DIR to use the run's split.json, "
            "or --split all"
        )
    if systems is not None:
        gid = np.asarray(data.system_props["group"])
        missing = sorted(set(int(g) for g in systems) - set(gid[idx].tolist()))
        if missing:
            raise ValueError(f"groups {missing[:10]} have no samples in split {split!r}")
        idx = idx[np.isin(gid[idx], np.asarray(systems))]
    if len(idx) == 0:
        raise ValueError(f"split {split!r} is empty")
    return idx


def pick_plot_groups(groups: np.ndarray, n_atoms: np.ndarray, n: int | None) -> np.ndarray:
    """Groups to plot: the ⌈n/2⌉ smallest and ⌊n/2⌋ largest by atom count (Default n = 4)."""
    n = 4 if n is None else n
    if n <= 0 or len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((groups, n_atoms))
    small, large = order[: (n + 1) // 2], order[::-1][: n // 2]
    chosen = list(dict.fromkeys([*small.tolist(), *large.tolist()]))
    return np.sort(np.asarray(groups)[chosen])


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _scales_per_group(data: PackedSystems, groups: np.ndarray) -> np.ndarray:
    gid = np.asarray(data.system_props["group"])
    s = np.asarray(data.system_props["scale"], dtype=np.float64)
    pairs = np.unique(np.stack([gid.astype(np.float64), s]), axis=1)
    ids, counts = np.unique(pairs[0], return_counts=True)
    return counts[np.searchsorted(ids, groups.astype(np.float64))]


def _write_curves_csv(path: Path, grid: np.ndarray, groups: np.ndarray, curves: dict) -> Path:
    from deepatoms.core.files import atomic_write_text

    rows = ["model,group,scale,energy"]
    for name, e in curves.items():
        for c, g in enumerate(groups):
            rows.extend(
                f"{name},{int(g)},{s:.6g},{v:.10g}" for s, v in zip(grid, e[c], strict=True)
            )
    atomic_write_text(path, "\n".join(rows) + "\n")
    return path


def _contributions_csv(path: Path, res: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = res["normalised"].shape[1]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["factor", "distance", "energy", *[f"atom{v}" for v in range(n)]])
        for f, d, e, row in zip(
            res["factor"], res["distance"], res["energy"], res["normalised"], strict=True
        ):
            w.writerow([f"{f:.6g}", f"{d:.6g}", f"{e:.10g}", *[f"{x:.6g}" for x in row]])
    return path


def curves_report(
    models: Sequence[str | Path], data_path: str | Path | None, out_dir: str | Path,
    split: str = "test", run_dir: str | Path | None = None, systems: Sequence[int] | None = None,
    plot_curves: int | None = None, step: float = 0.005, s_range: tuple[float, float] = (0.9, 1.5),
    s_eq: str = "one", batch_size: int = 100, displace_cluster: str | Path | None = None,
    atom: int | None = None, factors: Sequence[float] | np.ndarray = DEFAULT_FACTORS,
    normalise: str = "sum_abs", progress: bool = True, overwrite: bool = False,
) -> dict:  # fmt: skip
    """Evaluate ``models`` (model files or run folders) on energy curves; write OUT files.

    See the module docstring for what is computed. ``s_eq``: ``"one"`` (s_eq = 1) or
    ``"reference"`` (argmin of each group's labels). ``progress``: progress bars on stderr;
    ``overwrite``: replace an existing OUT/metrics.json. Returns the content of
    OUT/metrics.json (energies in the model unit, eV).
    """
    from deepatoms.core.files import write_json
    from deepatoms.models.loading import PROPERTY_FAMILIES, load_model, resolve_model_path

    if s_eq not in ("one", "reference"):
        raise ValueError(f"--s-eq must be 'one' or 'reference', got {s_eq!r}")
    check_new_file(Path(out_dir) / "metrics.json", overwrite)
    if data_path is None and displace_cluster is None:
        raise ValueError("nothing to do: give --data DATA.h5 and/or --displace-cluster FILE")
    if displace_cluster is not None and atom is None:
        raise ValueError("--displace-cluster needs --atom K, the index of the atom to move")
    show = progress
    progress = lambda label: ProgressBar(label, quiet=not show)  # noqa: E731
    out_dir = Path(out_dir)
    loaded, names, paths = [], [], []
    for m in models:
        path = resolve_model_path(m)
        loaded.append(load_model(path, expect=PROPERTY_FAMILIES))
        names.append(model_label(path, names))
        paths.append(str(path))
    result: dict = {"models": [{"name": n, "path": p} for n, p in zip(names, paths, strict=True)]}
    meta: dict = {}
    if data_path is not None:
        meta = _curves_on_data(
            result,
            loaded,
            names,
            Path(data_path),
            out_dir,
            split=split,
            run_dir=run_dir,
            systems=systems,
            plot_curves=plot_curves,
            grid=dense_grid(s_range[0], s_range[1], step),
            s_eq=s_eq,
            batch_size=batch_size,
            progress=progress,
        )
    if displace_cluster is not None:
        _displaced(
            result, loaded, names, Path(displace_cluster), atom, factors, normalise, meta, out_dir
        )
    result["metrics_file"] = str(out_dir / "metrics.json")
    result = _jsonable(result)
    write_json(out_dir / "metrics.json", result)
    return result


def _plan_groups(
    data: PackedSystems,
    idx: np.ndarray,
    plot_curves: int | None,
    chosen: bool,
    s_eq: str,
    target: str,
) -> dict:
    """Which groups get dense curves (DSC groups: > 1 labelled scale; plotted groups), their
    base structures, s_eq and mean bond length."""
    from deepatoms.analysis.energy_curves import base_structures, mean_bond_length

    gid = np.asarray(data.system_props["group"])
    groups = np.unique(gid[idx])
    dsc_groups = groups[_scales_per_group(data, groups) > 1]
    if chosen and plot_curves is None:  # --systems: plot them (up to 10)
        plot_groups = groups[:10]
    else:
        pool = dsc_groups if len(dsc_groups) else groups
        first = np.array([np.flatnonzero(gid == g)[0] for g in pool], dtype=np.int64)
        plot_groups = pick_plot_groups(pool, data.n_atoms[first], plot_curves)
    curve_groups = np.union1d(dsc_groups, plot_groups).astype(gid.dtype)
    plan = {
        "groups": groups,
        "dsc_groups": dsc_groups,
        "plot_groups": plot_groups,
        "curve_groups": curve_groups,
        "dsc_rows": np.searchsorted(curve_groups, dsc_groups),
        "base": None,
        "s_eq": np.ones(len(curve_groups)),
        "bond": np.zeros(len(curve_groups)),
    }
    if not len(curve_groups):
        return plan
    plan["base"] = base_structures(data, curve_groups)
    plan["bond"] = mean_bond_length(plan["base"])
    if s_eq == "reference":
        rows = np.flatnonzero(np.isin(gid, curve_groups))
        s, e = data.system_props["scale"][rows], data.system_props[target][rows]
        ids, s_min = reference_minima(gid[rows], s, e)
        plan["s_eq"] = s_min[np.searchsorted(ids, curve_groups)]
    return plan


def _curves_on_data(
    result: dict, loaded: list, names: list[str], data_path: Path, out_dir: Path, *, split: str,
    run_dir: str | Path | None, systems: Sequence[int] | None, plot_curves: int | None,
    grid: np.ndarray, s_eq: str, batch_size: int, progress: Callable[[str], Any],
) -> dict:  # fmt: skip
    """Score every model on the labelled points and dense curves; write plots and curves.csv.
    Fills ``result`` and returns the dataset metadata."""
    from deepatoms.analysis.energy_curves import model_curves
    from deepatoms.data.dataset import read_dataset
    from deepatoms.models.inference import predict_packed
    from deepatoms.train.run_folder import RunFolder as RunDir

    data, meta = read_dataset(data_path)
    check_curve_columns(data, str(data_path))
    split_file = None
    if run_dir is not None:
        split_file = RunDir(run_dir).split
        if not split_file.is_file():
            raise FileNotFoundError(f"{run_dir} has no split.json; is it a training run folder?")
    for lm, name in zip(loaded, names, strict=True):
        if lm.property not in data.system_props:
            raise ValueError(
                f"model {name} predicts {lm.property!r}, which {data_path} does not contain; "
                f"its system properties are {sorted(data.system_props)}"
            )
    idx = select_samples(data, split, split_file, systems)
    plan = _plan_groups(data, idx, plot_curves, systems is not None, s_eq, loaded[0].property)
    rows = plan["dsc_rows"]
    element = data.system_props.get("element")
    curves, by_size = {}, {}
    result.update(
        data=str(data_path),
        split=split if split_file is None else f"{split} (from {split_file})",
        n_samples=len(idx),
        n_groups=len(plan["groups"]),
        grid={
            "start": grid[0],
            "stop": grid[-1],
            "step": float(np.round(grid[1] - grid[0], 12)) if len(grid) > 1 else None,
            "n": len(grid),
        },
        s_eq=s_eq,
        dsc_groups=plan["dsc_groups"],
        dsc_note=None if len(rows) else "every group has a single labelled scale: no DSC",
    )
    for lm, name, entry in zip(loaded, names, result["models"], strict=True):
        vocab = (meta.get("bond_types"), lm.meta.get("bond_types"))
        data_m, warnings = match_bond_types(data, *vocab) if lm.graph.stored_only else (data, [])
        check_graph(lm, data_m, str(data_path))
        with progress(f"{name}: labelled points") as bar:
            pred = predict_packed(lm, data_m, idx, batch_size, bar)
        ref = np.asarray(data.system_props[lm.property][idx], dtype=np.float64)
        entry.update(
            unit=lm.unit, graph=lm.graph.kind, warnings=warnings, **error_summary(pred, ref)
        )
        by_size[name] = entry["by_size"] = errors_by_size(data.n_atoms[idx], pred, ref)
        if element is not None:
            entry["by_element"] = errors_by_label(np.asarray(element)[idx], pred, ref)
        entry.update(dsc=None, dsc_std=None, dsc_angstrom=None, dsc_angstrom_std=None)
        if plan["base"] is None:
            continue
        base_m = match_bond_types(plan["base"], *vocab)[0] if lm.graph.stored_only else plan["base"]
        with progress(f"{name}: dense curves") as bar:
            e_hat, seconds = timed(model_curves, lm, base_m, grid, batch_size, bar)
        curves[name] = e_hat
        entry["seconds_per_estimate"] = seconds / max(e_hat.size, 1)
        if len(rows):
            d = dsc(grid, e_hat[rows], plan["s_eq"][rows])
            in_s, in_a = dsc_summary(d), dsc_summary(d * plan["bond"][rows])
            entry.update(dsc=in_s["dsc"], dsc_std=in_s["dsc_std"], n_dsc_groups=in_s["n"])
            entry.update(dsc_angstrom=in_a["dsc"], dsc_angstrom_std=in_a["dsc_std"], dsc_values=d)
    out_dir.mkdir(parents=True, exist_ok=True)
    result["plots"] = _plot_all(data, plan, grid, curves, by_size, out_dir, loaded[0])
    if curves:
        csv_path = _write_curves_csv(out_dir / "curves.csv", grid, plan["curve_groups"], curves)
        result["curves_csv"] = str(csv_path)
    return meta


def _plot_all(
    data, plan, grid, curves, by_size, out_dir, first,
) -> list[str]:  # fmt: skip
    """error_vs_size.png and one curves_<group>.png per plotted group."""
    from deepatoms.analysis.curve_plots import plot_energy_curves, plot_error_vs_size
    from deepatoms.analysis.energy_curves import reference_curves

    plots = [str(plot_error_vs_size(out_dir / "error_vs_size.png", by_size, first.unit))]
    if not curves:
        return plots
    from ase import Atoms

    gid = np.asarray(data.system_props["group"])
    element = data.system_props.get("element")
    refs = reference_curves(data, plan["plot_groups"], first.property)
    for g in plan["plot_groups"]:
        c = int(np.searchsorted(plan["curve_groups"], g))
        k = int(np.flatnonzero(gid == g)[0])
        s, e = data.offsets[k], data.offsets[k + 1]
        formula = Atoms(numbers=data.numbers[s:e]).get_chemical_formula()
        label = f"group {int(g)}: {formula} ({int(data.n_atoms[k])} atoms)"
        if "smiles" in data.system_props:
            label += f", {data.system_props['smiles'][k]}"
        if element is not None:
            label += f", {np.asarray(element)[k]}"
        png = plot_energy_curves(
            out_dir / f"curves_{int(g)}.png",
            grid,
            {n: e[c] for n, e in curves.items()},
            refs[int(g)],
            float(plan["s_eq"][c]),
            label,
            first.unit,
        )
        plots.append(str(png))
    return plots


def _displaced(
    result, loaded, names, cluster_path, atom, factors, normalise, meta, out_dir,
):  # fmt: skip
    import ase.io

    from deepatoms.analysis.curve_plots import plot_contributions
    from deepatoms.analysis.energy_curves import cluster_pack, displaced_atom_contributions

    if not cluster_path.is_file():
        raise FileNotFoundError(f"cluster file {cluster_path} does not exist")
    try:
        atoms = ase.io.read(cluster_path)
    except Exception as exc:  # ase raises many types for unreadable files
        raise ValueError(f"cannot read {cluster_path} as a structure: {exc}") from exc
    out = {"cluster": str(cluster_path), "atom_index": atom, "normalisation": normalise}
    for lm, name in zip(loaded, names, strict=True):
        pack = cluster_pack(atoms, lm, meta.get("bond_types"), meta.get("bond_rule"))
        res = displaced_atom_contributions(lm, pack, atom, factors, normalise)
        png = plot_contributions(
            out_dir / f"contributions_{name}.png",
            res["factor"],
            res["normalised"],
            int(res["atom_index"]),
            res["energy"],
            f"{name}: atom {res['atom_index']} of {cluster_path.name} moved",
            lm.unit,
        )
        table = _contributions_csv(out_dir / f"contributions_{name}.csv", res)
        out[name] = {
            "plot": str(png),
            "csv": str(table),
            "factor": res["factor"],
            "energy": res["energy"],
            "moving_atom": res["normalised"][:, res["atom_index"]],
        }
    result["displaced"] = out


def _fmt(mean, std) -> str:
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "-"
    std = 0.0 if abs(std) < 1e-12 * max(abs(mean), 1e-300) else std  # rounding noise
    return f"{mean:.4g} ({std:.3g})"


def format_table(result: dict) -> list[str]:
    """The printed summary: one row per model (MAE [eV], MSE [eV²], RE [-], DSC [s] and [Å])."""
    rows = [("model", "n", "MAE", "MSE", "RE", "DSC", "DSC")]
    unit = result["models"][0].get("unit", "eV") if result["models"] else "eV"
    rows.append(("", "", f"[{unit}]", f"[{unit}²]", "[-]", "[s]", "[Å]"))
    for m in result["models"]:
        rows.append(
            (
                m["name"],
                str(m.get("n", "")),
                _fmt(m.get("mae"), m.get("mae_std")),
                _fmt(m.get("mse"), m.get("mse_std")),
                _fmt(m.get("re"), m.get("re_std")),
                _fmt(m.get("dsc"), m.get("dsc_std")),
                _fmt(m.get("dsc_angstrom"), m.get("dsc_angstrom_std")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for m in result["models"]:
        for label, e in (m.get("by_element") or {}).items():
            lines.append(
                f"{m['name']} element {label} (n={e['n']}): MAE {_fmt(e['mae'], e['mae_std'])}, "
                f"RE {_fmt(e['re'], e['re_std'])}"
            )
    return lines
