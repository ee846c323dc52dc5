"""Isotropic scaling scans: energy (and pressure for crystals) against a uniform scale factor.

Every position (about the centre of mass for molecules) and, for periodic cells, the cell is
multiplied by the scale factor s: s < 1 compresses, s > 1 stretches. The model evaluates all
scaled images in one batched forward pass; an optional reference calculator is evaluated on the
same images, one by one.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError

from deepatoms.simulate.calculator import Calculator
from deepatoms.simulate.relax import is_periodic

_EV_A3_TO_GPA = 1.0 / units.GPa
_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


def parse_scale(text: str) -> np.ndarray:
    """Scale factors from ``START:STOP:N`` (N evenly spaced values, both ends included, as
    ``np.linspace``) or a comma-separated list ``0.9,1.0,1.1``. All must be > 0."""
    text = str(text).strip()
    hint = "write START:STOP:N, e.g. 0.9:1.5:10, or a list such as 0.95,1.0,1.05"
    m = _RANGE.match(text)
    try:
        if m:
            start, stop, count = float(m.group(1)), float(m.group(2)), m.group(3).strip()
            if not count.isdigit() or int(count) < 2:
                raise ValueError(f"the number of points N must be an integer >= 2, got {count!r}")
            if start == stop:
                raise ValueError("START and STOP are equal")
            scales = np.linspace(start, stop, int(count))
        elif ":" in text:
            raise ValueError("a range needs exactly three parts")
        else:
            scales = np.array([float(x) for x in text.split(",")])
    except ValueError as exc:
        msg = str(exc) if "could not convert" not in str(exc) else "not a number"
        raise ValueError(f"bad scale {text!r} ({msg}); {hint}") from None
    if scales.size == 0 or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise ValueError(f"bad scale {text!r}: scale factors must be finite and > 0; {hint}")
    return scales


def scaled_images(atoms: Atoms, scales: Sequence[float]) -> list[Atoms]:
    """Copies of ``atoms`` scaled by each factor (positions and, if periodic, the cell)."""
    periodic = is_periodic(atoms)
    centre = np.zeros(3) if periodic else atoms.get_center_of_mass()
    images = []
    for s in scales:
        img = atoms.copy()
        img.calc = None
        img.positions = (atoms.positions - centre) * s + centre
        if periodic:
            img.set_cell(atoms.cell.array * s, scale_atoms=False)
        images.append(img)
    return images


def _pressure(stress_voigt: np.ndarray) -> float:
    """Pressure (GPa) from an ASE Voigt stress (eV/Å³): P = −tr(σ)/3."""
    return float(-np.mean(np.asarray(stress_voigt)[:3]) * _EV_A3_TO_GPA)


def _reference_points(images: list[Atoms], reference: AseCalculator, periodic: bool) -> dict:
    energy, pressure = [], []
    for img in images:
        img.calc = reference
        energy.append(img.get_potential_energy())
        if periodic and pressure is not None:
            try:
                pressure.append(_pressure(img.get_stress(voigt=True)))
            except PropertyNotImplementedError:
                pressure = None
        img.calc = None
    return {"energy": np.array(energy), "pressure_GPa": np.array(pressure) if pressure else None}


def scan(
    atoms: Atoms,
    calculator: Calculator,
    scales: Sequence[float],
    reference: AseCalculator | None = None,
) -> dict:
    """Energies (eV) of ``atoms`` scaled by each factor, from one batched model call.

    Args:
        atoms: structure (Å); not modified.
        calculator: the model's :class:`~deepatoms.simulate.calculator.Calculator`.
        scales: scale factors (> 0), e.g. from :func:`parse_scale`.
        reference: optional ASE calculator evaluated on the same images.

    Returns:
        dict with ``scale`` [S], ``energy`` [S] (eV), ``periodic``, ``n_atoms``, ``min_scale``
        (scale of the lowest model energy) and, for periodic cells, ``volume`` [S] (Å³) and
        ``pressure_GPa`` [S] (−tr σ/3); with a reference also ``reference`` (``energy``,
        ``pressure_GPa`` or None) and ``reference_min_scale``.
    """
    scales = np.asarray(scales, dtype=float)
    if scales.size == 0 or np.any(scales <= 0):
        raise ValueError("give at least one scale factor, all > 0")
    periodic = is_periodic(atoms)
    images = scaled_images(atoms, scales)
    results = calculator.calculate_images(images, forces=False, stress=periodic)
    energy = np.array([r["energy"] for r in results])
    out = {
        "scale": scales,
        "energy": energy,
        "periodic": periodic,
        "n_atoms": len(atoms),
        "min_scale": float(scales[np.argmin(energy)]),
    }
    if periodic:
        out["volume"] = np.array([img.get_volume() for img in images])
        out["pressure_GPa"] = np.array([_pressure(r["stress"]) for r in results])
    if reference is not None:
        ref = _reference_points(images, reference, periodic)
        out["reference"] = ref
        out["reference_min_scale"] = float(scales[np.argmin(ref["energy"])])
    return out


def scan_table(result: dict) -> tuple[list[str], list[list[float]]]:
    """Column names and rows of a scan result (the CSV layout)."""
    cols = {"scale": result["scale"]}
    if result["periodic"]:
        cols["volume_A3"] = result["volume"]
    cols["energy_eV"] = result["energy"]
    cols["energy_rel_eV"] = result["energy"] - result["energy"].min()
    if result["periodic"]:
        cols["pressure_GPa"] = result["pressure_GPa"]
    ref = result.get("reference")
    if ref is not None:
        cols["ref_energy_eV"] = ref["energy"]
        cols["ref_energy_rel_eV"] = ref["energy"] - ref["energy"].min()
        if ref["pressure_GPa"] is not None:
            cols["ref_pressure_GPa"] = ref["pressure_GPa"]
    names = list(cols)
    rows = [[float(cols[c][k]) for c in names] for k in range(len(result["scale"]))]
    return names, rows


def write_scan_csv(result: dict, path: str | Path) -> Path:
    """Write the scan as CSV (columns of :func:`scan_table`) atomically."""
    from deepatoms.core.files import atomic_write_text

    names, rows = scan_table(result)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([[f"{v:.10g}" for v in row] for row in rows])
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def plot_scan(result: dict, path: str | Path, label: str = "model", ref_label: str = "reference"):
    """PNG of the energy relative to its minimum (eV) against the scale factor, model vs
    reference, with the pressure (GPa) in a second panel for periodic cells."""
    from deepatoms.analysis.plots import pyplot, save_figure

    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = result["scale"]
    ref = result.get("reference")
    panels = 2 if result["periodic"] else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.6), dpi=130, squeeze=False)
    ax = axes[0, 0]
    ax.plot(s, result["energy"] - result["energy"].min(), "o-", ms=3, label=label)
    if ref is not None:
        ax.plot(s, ref["energy"] - ref["energy"].min(), "s--", ms=3, label=ref_label)
    ax.set_xlabel("scale factor")
    ax.set_ylabel("E − E_min [eV]")
    ax.legend()
    if result["periodic"]:
        axp = axes[0, 1]
        axp.plot(s, result["pressure_GPa"], "o-", ms=3, label=label)
        if ref is not None and ref["pressure_GPa"] is not None:
            axp.plot(s, ref["pressure_GPa"], "s--", ms=3, label=ref_label)
        axp.axhline(0.0, color="0.6", lw=0.8)
        axp.set_xlabel("scale factor")
        axp.set_ylabel("pressure [GPa]")
        axp.legend()
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["parse_scale", "plot_scan", "scaled_images", "scan", "scan_table", "write_scan_csv"]
