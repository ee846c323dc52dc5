"""Harmonic vibrational analysis: Hessian → mass-weighted Hessian → frequencies and normal modes.

Hessian H_ab = ∂²E/∂x_a∂x_b (eV/Å², x the 3N Cartesian coordinates) from

- automatic differentiation of a deepatoms model (double back-propagation: the gradient is built
  with ``create_graph=True``, then differentiated again for all rows in batched passes with
  ``torch.autograd.grad(..., is_grads_batched=True)``);
- central finite differences of forces, H_{:,k} = −(F(x + h e_k) − F(x − h e_k)) / 2h, for a
  deepatoms model (all 6N displaced images in one batched forward pass) or for any ASE reference
  calculator (xTB, EMT).

Both are symmetrised. The mass-weighted Hessian μ_ab = H_ab / √(m_a m_b) (Schütt 2018 thesis,
C20 frequencies) has eigenvalues λ = ω²; frequencies are reported as wavenumbers ω/(2πc) in cm⁻¹,
imaginary ones as negative numbers.

Rigid-body motions (3 translations and, for molecules, 3 rotations, 2 when linear) are projected
out of μ by default: the vibrational frequencies are the eigenvalues of μ in the orthogonal
complement of the rigid-body vectors, and the rigid-body "frequencies" (the eigenvalues of μ in
their own subspace; near zero at a minimum of an invariant model) are reported separately.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from ase import Atoms, units
from ase.calculators.calculator import Calculator as AseCalculator

from deepatoms.data.graph import Batch
from deepatoms.models.potential import energy_key
from deepatoms.simulate.calculator import Calculator
from deepatoms.simulate.relax import is_periodic, relax

#: Methods for the model Hessian.
METHODS = ("autograd", "fd")
#: ħ·√(eV/(Å²·amu)) in eV: the energy quantum of λ = 1 eV/(Å²·amu).
_HBAR_SQRT = units._hbar * 1e10 / math.sqrt(units._e * units._amu)


def autograd_hessian(model: torch.nn.Module, batch: Batch, chunk: int = 64) -> np.ndarray:
    """Hessian [3N,3N] (eV/Å²) of the energy of a one-system ``batch`` by double backprop.

    Rows are computed ``chunk`` at a time with batched vector–Jacobian products (falls back to
    one row at a time where an operation has no batching rule).
    """
    key = energy_key(model)
    with torch.enable_grad():
        pos = batch.positions.detach().requires_grad_(True)
        energy = model(replace(batch, positions=pos))[key].sum()
        (grad,) = torch.autograd.grad(energy, pos, create_graph=True)
        grad = grad.reshape(-1)
        n = grad.numel()
        eye = torch.eye(n, dtype=grad.dtype, device=grad.device)
        rows = []
        for s in range(0, n, chunk):
            vectors = eye[s : s + chunk]
            try:
                (h,) = torch.autograd.grad(
                    grad, pos, grad_outputs=vectors, is_grads_batched=True, retain_graph=True
                )
                rows.append(h.reshape(len(vectors), n))
            except RuntimeError:  # no vmap rule for some op: one row at a time
                for v in vectors:
                    (h,) = torch.autograd.grad(grad, pos, grad_outputs=v, retain_graph=True)
                    rows.append(h.reshape(1, n))
    hess = torch.cat(rows).detach().double().cpu().numpy()
    return 0.5 * (hess + hess.T)


def displaced_images(atoms: Atoms, delta: float) -> list[Atoms]:
    """The 6N images x ± delta·e_k (Å), ordered (+e_0, −e_0, +e_1, −e_1, …)."""
    images = []
    for k in range(3 * len(atoms)):
        for sign in (1.0, -1.0):
            img = atoms.copy()
            img.calc = None
            img.positions[k // 3, k % 3] += sign * delta
            images.append(img)
    return images


def fd_hessian(
    atoms: Atoms, forces_of: Callable[[list[Atoms]], Sequence[np.ndarray]], delta: float = 0.005
) -> np.ndarray:
    """Hessian [3N,3N] (eV/Å²) from central differences of forces (eV/Å) with step ``delta`` Å.

    ``forces_of(images)`` returns the forces of each image (e.g. one batched model call).
    """
    if not delta > 0:
        raise ValueError(f"the finite-difference step must be > 0 Å, got {delta}")
    n = 3 * len(atoms)
    forces = np.asarray(forces_of(displaced_images(atoms, delta)), dtype=float).reshape(n, 2, n)
    hess = -(forces[:, 0] - forces[:, 1]) / (2.0 * delta)  # row k: −∂F/∂x_k = H[k, :]
    return 0.5 * (hess + hess.T)


def model_hessian(
    calculator: Calculator, atoms: Atoms, method: str = "autograd", delta: float = 0.005
) -> np.ndarray:
    """Hessian [3N,3N] (eV/Å²) of a deepatoms model (the force model where one is set).

    ``method``: ``autograd`` (exact second derivatives) or ``fd`` (central differences of the
    model forces with step ``delta`` Å, all displaced images in batched forward passes).
    """
    if method not in METHODS:
        raise ValueError(f"unknown Hessian method {method!r}; choose autograd or fd")
    if method == "fd":
        per_call = max(1, 20000 // max(1, len(atoms)))  # bound the atoms of one batch

        def forces_of(images: list[Atoms]) -> list[np.ndarray]:
            out = []
            for s in range(0, len(images), per_call):
                res = calculator.calculate_images(images[s : s + per_call], forces=True)
                out.extend(r["forces"] for r in res)
            return out

        return fd_hessian(atoms, forces_of, delta)
    loaded = calculator.force_model or calculator.energy_model
    batch = Batch.from_atoms(atoms, calculator.graph, dtype=calculator.dtype)
    return autograd_hessian(loaded.model, batch.to(calculator.device))


def reference_hessian(atoms: Atoms, calculator: AseCalculator, delta: float = 0.005) -> np.ndarray:
    """Hessian [3N,3N] (eV/Å²) of any ASE calculator by central differences of its forces."""

    def forces_of(images: list[Atoms]) -> list[np.ndarray]:
        out = []
        for img in images:
            img.calc = calculator
            out.append(img.get_forces())
            img.calc = None
        return out

    return fd_hessian(atoms, forces_of, delta)


def rigid_body_basis(atoms: Atoms, tol: float = 1e-3) -> np.ndarray:
    """Orthonormal basis [3N, k] of rigid-body motions in mass-weighted coordinates.

    k = 3 (translations) for periodic cells; for molecules 6, or 5 when linear (singular values
    below ``tol`` × the largest are dropped), 3 for one atom.
    """
    m = atoms.get_masses()
    sq = np.sqrt(m)[:, None]
    vectors = [(sq * np.eye(3)[a]).ravel() for a in range(3)]
    if not is_periodic(atoms):
        r = atoms.positions - atoms.get_center_of_mass()
        vectors += [(sq * np.cross(np.eye(3)[a], r)).ravel() for a in range(3)]
    u, s, _ = np.linalg.svd(np.stack(vectors, axis=1), full_matrices=False)
    return u[:, s > tol * s.max()]


def wavenumbers(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of the mass-weighted Hessian (eV/(Å²·amu)) → wavenumbers (cm⁻¹); negative
    eigenvalues give negative (imaginary) wavenumbers."""
    lam = np.asarray(eigenvalues, dtype=float)
    return np.sign(lam) * _HBAR_SQRT * np.sqrt(np.abs(lam)) / units.invcm


@dataclass
class HarmonicModes:
    """Result of :func:`harmonic_analysis` (frequencies in cm⁻¹, imaginary ones negative).

    ``frequencies`` [M] ascending vibrational wavenumbers; ``modes`` [M, N, 3] their Cartesian
    displacement patterns (unit norm); ``rigid_frequencies`` [k] wavenumbers of the projected
    rigid-body motions (empty without projection); ``hessian`` [3N, 3N] in eV/Å²; ``masses`` [N]
    in amu; ``linear`` (molecule); ``projected``.
    """

    frequencies: np.ndarray
    modes: np.ndarray
    rigid_frequencies: np.ndarray
    hessian: np.ndarray
    masses: np.ndarray
    linear: bool
    projected: bool
    info: dict = field(default_factory=dict)

    @property
    def n_rigid(self) -> int:
        """Number of rigid-body modes removed."""
        return len(self.rigid_frequencies)

    def to_dict(self) -> dict:
        """JSON-friendly summary (frequencies only, no Hessian or modes)."""
        return {
            "frequencies_cm1": self.frequencies.tolist(),
            "rigid_frequencies_cm1": self.rigid_frequencies.tolist(),
            "n_rigid": self.n_rigid,
            "linear": self.linear,
            "n_imaginary": int(np.sum(self.frequencies < 0)),
            **self.info,
        }


def harmonic_analysis(atoms: Atoms, hessian: np.ndarray, project: bool = True) -> HarmonicModes:
    """Frequencies (cm⁻¹) and normal modes from a Hessian [3N,3N] (eV/Å²) of ``atoms``.

    With ``project`` (default) the rigid-body motions are removed (module docstring); without,
    all 3N eigenvalues of the mass-weighted Hessian are returned as frequencies.
    """
    n = len(atoms)
    hessian = np.asarray(hessian, dtype=float)
    if hessian.shape != (3 * n, 3 * n):
        raise ValueError(f"Hessian of shape {hessian.shape} does not fit {n} atoms (3N = {3 * n})")
    masses = atoms.get_masses()
    inv_sq = np.repeat(1.0 / np.sqrt(masses), 3)
    mw = hessian * inv_sq[:, None] * inv_sq[None, :]
    mw = 0.5 * (mw + mw.T)
    rigid = rigid_body_basis(atoms)
    linear = not is_periodic(atoms) and n > 1 and rigid.shape[1] == 5
    if project:
        # complement of the rigid-body space: the remaining left singular vectors
        full = np.linalg.svd(rigid, full_matrices=True)[0]
        vib_basis = full[:, rigid.shape[1] :]
        lam, vec = np.linalg.eigh(vib_basis.T @ mw @ vib_basis)
        vec = vib_basis @ vec
        rigid_lam = np.linalg.eigvalsh(rigid.T @ mw @ rigid)
    else:
        lam, vec = np.linalg.eigh(mw)
        rigid_lam = np.zeros(0)
    disp = (vec * inv_sq[:, None]).T.reshape(-1, n, 3)
    disp /= np.linalg.norm(disp.reshape(len(disp), -1), axis=1)[:, None, None]
    return HarmonicModes(
        frequencies=wavenumbers(lam),
        modes=disp,
        rigid_frequencies=np.sort(wavenumbers(rigid_lam)),
        hessian=hessian,
        masses=masses,
        linear=linear,
        projected=project,
    )


def compare_frequencies(model_freqs: Sequence[float], ref_freqs: Sequence[float]) -> dict:
    """Errors of model vs reference frequencies (cm⁻¹), matched by sorted order.

    Returns ``mae_cm1``, ``max_abs_cm1``, ``max_rel_percent`` (max |Δ|/|ref|·100 over modes with
    a non-zero reference), ``n_modes`` and ``errors_cm1`` (model − reference, sorted order).
    """
    a = np.sort(np.asarray(model_freqs, dtype=float))
    b = np.sort(np.asarray(ref_freqs, dtype=float))
    if a.shape != b.shape:
        raise ValueError(
            f"cannot compare {len(a)} model frequencies with {len(b)} reference frequencies"
        )
    if len(a) == 0:
        raise ValueError("no frequencies to compare")
    err = a - b
    nonzero = np.abs(b) > 0
    rel = np.abs(err[nonzero]) / np.abs(b[nonzero]) * 100.0
    return {
        "mae_cm1": float(np.abs(err).mean()),
        "max_abs_cm1": float(np.abs(err).max()),
        "max_rel_percent": float(rel.max()) if rel.size else float("nan"),
        "n_modes": len(a),
        "errors_cm1": err.tolist(),
    }


def _analyse(
    atoms: Atoms, calc: AseCalculator, hessian_of: Callable[[Atoms], np.ndarray], relax_first: bool,
    fmax: float, optimizer: str, steps: int, project: bool,
) -> tuple[HarmonicModes, Atoms]:  # fmt: skip
    relaxed = None
    if relax_first:
        relaxed = relax(atoms, calc, fmax=fmax, optimizer=optimizer, steps=steps)
        atoms = relaxed["atoms"]
    res = harmonic_analysis(atoms, hessian_of(atoms), project=project)
    if relaxed is not None:
        res.info["relax"] = {k: v for k, v in relaxed.items() if k != "atoms"}
    return res, atoms


def vibrational_analysis(
    atoms: Atoms, calculator: Calculator, *, reference: AseCalculator | None = None,
    relax_first: bool = True, fmax: float = 1e-3, method: str = "autograd", delta: float = 0.005,
    optimizer: str = "bfgs", steps: int = 2000, project: bool = True,
) -> dict:  # fmt: skip
    """Harmonic frequencies of a deepatoms model and, optionally, of a reference calculator.

    Args:
        atoms: structure (Å); not modified.
        calculator: the model's :class:`~deepatoms.simulate.calculator.Calculator` (float64 is
            advised for tight relaxations).
        reference: optional ASE calculator (e.g. xTB or EMT from
            :func:`deepatoms.datagen.calculators.make_calculator`); its Hessian comes from
            central differences of its forces.
        relax_first: relax to ``fmax`` (eV/Å) first, each with its own calculator: the model's
            frequencies at the model's minimum, the reference's at the reference's minimum.
        method: model Hessian by ``autograd`` or ``fd`` (step ``delta`` Å).
        optimizer, steps: for the relaxations.
        project: remove rigid-body motions (3 periodic / 5 linear / 6 otherwise).

    Returns:
        dict with ``model`` and ``reference`` (:class:`HarmonicModes`, the reference None
        without a calculator), ``model_atoms`` / ``reference_atoms`` (the analysed structures),
        ``comparison`` (:func:`compare_frequencies` or None) and ``relaxed``.
    """
    if len(atoms) < 2:
        raise ValueError("a vibrational analysis needs at least 2 atoms")
    settings = dict(relax_first=relax_first, fmax=fmax, optimizer=optimizer, steps=steps,
                    project=project)  # fmt: skip
    model, model_atoms = _analyse(
        atoms, calculator, lambda a: model_hessian(calculator, a, method, delta), **settings
    )
    model.info["method"] = method
    ref = ref_atoms = comparison = None
    if reference is not None:
        ref, ref_atoms = _analyse(
            atoms, reference, lambda a: reference_hessian(a, reference, delta), **settings
        )
        ref.info["method"] = "fd"
        comparison = compare_frequencies(model.frequencies, ref.frequencies)
    return {
        "model": model,
        "model_atoms": model_atoms,
        "reference": ref,
        "reference_atoms": ref_atoms,
        "comparison": comparison,
        "relaxed": relax_first,
    }


__all__ = [
    "METHODS",
    "HarmonicModes",
    "autograd_hessian",
    "compare_frequencies",
    "displaced_images",
    "fd_hessian",
    "harmonic_analysis",
    "model_hessian",
    "reference_hessian",
    "rigid_body_basis",
    "vibrational_analysis",
    "wavenumbers",
]
