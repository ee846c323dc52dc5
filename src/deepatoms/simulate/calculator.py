"""ASE calculator for any trained deepatoms energy model.

Energies (eV), forces F = −∂E/∂R (eV/Å) and, for periodic cells, stress σ = (1/V) ∂E/∂ε (eV/Å³,
ASE Voigt order) come from :func:`deepatoms.models.potential.inference_potential`: for SchNet
the analytic :class:`deepatoms.models.schnet_potential.SchNetPotential` (the same values with a
hand-written backward pass, about twice as fast for small molecules), else autograd.

Neighbour lists are reused between steps with a Verlet skin: the list is built with cutoff
r_c + skin and rebuilt only when an atom has moved more than skin/2 since the last build (or the
cell, the elements or the periodicity changed). This is exact only when pairs beyond r_c
contribute nothing, i.e. when the model multiplies its messages by a cutoff function that
vanishes at r_c and sums them (``aggregation: sum``). For other models (mean aggregation divides
by the neighbour count; no cutoff function) the calculator sets the skin to 0 and rebuilds the
list whenever the positions change. All-pairs graphs (molecules) never need a rebuild.

Several images are evaluated in one batched forward pass with :meth:`Calculator.calculate_images`
(used by ``scan``, finite-difference vibrations and path-integral beads).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes

from deepatoms.core.allocator import keep_freed_memory
from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec, build_edges
from deepatoms.models.committee import force_deviation, member_std
from deepatoms.models.loaded import LoadedModel
from deepatoms.models.loading import PROPERTY_FAMILIES, load_model
from deepatoms.models.potential import inference_potential, stress_to_voigt

log = logging.getLogger(__name__)

#: Skin lists with fewer pairs are used as they are: pruning them to r_c costs more than the
#: model saves on the few extra pairs (which contribute exactly zero).
PRUNE_MIN_PAIRS = 2000

ModelLike = str | Path | LoadedModel


def _load(model: ModelLike, device: torch.device, dtype: torch.dtype | None) -> LoadedModel:
    loaded = (
        model if isinstance(model, LoadedModel) else load_model(model, expect=PROPERTY_FAMILIES)
    )
    if loaded.unit != "eV":
        unit = f"in {loaded.unit!r}" if loaded.unit else "with no recorded unit"
        raise ValueError(
            f"the model predicts {loaded.property!r} {unit}; an ASE calculator needs an energy "
            "model in eV (import the data with --energy-key/--energy-unit, then train with "
            "--target energy)"
        )
    readout = getattr(getattr(loaded.model, "head", None), "readout", "sum")
    if readout != "sum":
        raise ValueError(
            f"the model predicts {loaded.property!r} with a {readout} readout (an intensive "
            "property such as an orbital energy), not a total energy; an ASE calculator needs a "
            "potential energy model with a sum readout (train one with --target energy)"
        )
    loaded.model.to(device=device)
    if dtype is not None:
        loaded.model.to(dtype=dtype)
    # Only gradients with respect to positions and strain are needed at run time.
    loaded.model.requires_grad_(False).eval()
    return loaded


def skin_is_exact(model_config: dict, graph: GraphSpec) -> bool:
    """True when extra pairs in r_c < d ≤ r_c + skin cannot change the model's energy."""
    if graph.kind != "cutoff":
        return False
    fn, rc = model_config.get("cutoff_fn"), model_config.get("cutoff")
    return (
        fn in ("cosine", "hard")
        and rc is not None
        and rc <= graph.cutoff
        and model_config.get("aggregation", "sum") == "sum"
    )


@dataclass
class _Neighbours:
    """A cached neighbour list (r_c + skin, mirrored) and the state it was built for.

    ``pairs [2,P]`` and ``pair_shift [P,3]`` are its first half (one entry per unordered pair);
    ``edge_index``/``edge_shift`` the full mirrored list used when no pruning applies; ``static``
    the batch tensors that do not change until the next rebuild (numbers, cell, pbc, ...).
    """

    edge_index: torch.Tensor
    edge_shift: torch.Tensor
    static: dict[str, torch.Tensor]
    pairs: np.ndarray
    pair_shift: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    numbers: np.ndarray


class Calculator(AseCalculator):
    """ASE calculator around a deepatoms model file (or a :class:`LoadedModel`).

    A committee model (``deepatoms train --ensemble N``) gives the member mean and puts its
    spread in ``results``: ``energy_std`` (eV), ``forces_std`` ([n, 3] eV/Å, per component),
    ``stress_std`` (Voigt, eV/Å³; periodic cells), ``force_deviation`` ([n] eV/Å, per atom) and
    ``max_force_deviation`` (eV/Å;
    :mod:`deepatoms.models.committee`).

    Args:
        model: ``model.pt`` of a training run (energy in eV), or a loaded model.
        force_model: optional second model for forces and stress; energies then come from
            ``model`` (separate energy and force models, Schütt 2018 thesis Eqs. 5.8–5.11).
        skin: Verlet skin in Å for neighbour-list reuse (0: rebuild on every position change).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        dtype: cast the model, e.g. ``torch.float64`` for tight relaxations (default: as saved).
        keep_memory: raise glibc's malloc thresholds for this process so that the tensors of
            one force call are reused by the next instead of being page-faulted in again
            (:func:`deepatoms.core.allocator.keep_freed_memory`; large cells run up to 2x
            faster and steadier). False leaves the allocator alone.
    """

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")

    def __init__(
        self, model: ModelLike, *, force_model: ModelLike | None = None, skin: float = 0.5,
        device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
        keep_memory: bool = True, **kwargs,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if keep_memory:
            keep_freed_memory()
        if skin < 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        self.device = torch.device(device)
        self.energy_model = _load(model, self.device, dtype)
        self.force_model = (
            _load(force_model, self.device, dtype) if force_model is not None else None
        )
        self.dtype = next(self.energy_model.model.parameters()).dtype
        # Analytic forces for SchNet (the same values at a fraction of the overhead), else autograd.
        derivative_model = (self.force_model or self.energy_model).model
        self._potential = inference_potential(derivative_model)
        models = [self.energy_model] + ([self.force_model] if self.force_model else [])
        self.graph = self._common_graph(models)
        if self.graph.kind not in ("all", "cutoff"):
            raise ValueError(
                f"the calculator supports distance-cutoff and all-pairs models, not "
                f"{self.graph.kind!r} graphs (their edges are not a smooth function of positions)"
            )
        exact = all(skin_is_exact(m.model.config, m.graph) for m in models)
        if skin > 0 and self.graph.kind == "cutoff" and not exact:
            log.info(
                "skin set to 0: the model's energy depends on pairs beyond its cutoff "
                "(mean aggregation or no cutoff function), so the list is rebuilt every step"
            )
        self.skin = skin if exact else 0.0
        self._nbrs: _Neighbours | None = None
        self.n_builds = 0

    @staticmethod
    def _common_graph(models: Sequence[LoadedModel]) -> GraphSpec:
        kinds = {m.graph.kind for m in models}
        if len(kinds) > 1:
            raise ValueError(f"the energy and force models use different graph kinds {kinds}")
        cutoffs = [m.graph.cutoff for m in models if m.graph.cutoff is not None]
        return GraphSpec(kinds.pop(), max(cutoffs) if cutoffs else None)

    # -- neighbour lists ---------------------------------------------------------------------
    def _needs_rebuild(self, atoms: Atoms) -> bool:
        nb = self._nbrs
        if nb is None or len(nb.numbers) != len(atoms):
            return True
        if not (np.array_equal(nb.numbers, atoms.numbers) and np.array_equal(nb.pbc, atoms.pbc)):
            return True
        if not np.array_equal(nb.cell, atoms.cell.array):
            return True
        if self.graph.kind == "all" and not atoms.pbc.any():
            return False  # all pairs: independent of the positions
        moved = np.linalg.norm(atoms.positions - nb.positions, axis=1).max(initial=0.0)
        return bool(moved > 0.5 * self.skin) if self.skin > 0 else moved > 0

    def _batch(self, atoms: Atoms) -> Batch:
        """A one-system batch, reusing the cached neighbour list when it is still valid."""
        if self._needs_rebuild(atoms):
            graph = self.graph
            if graph.kind == "cutoff" and self.skin > 0:
                graph = GraphSpec("cutoff", graph.cutoff + self.skin)
            offsets = np.array([0, len(atoms)])
            edges = build_edges(
                atoms.positions, offsets, atoms.cell.array[None], atoms.pbc[None], graph
            )
            ei, es = edges.edge_index, edges.edge_shift
            half = ei.shape[1] // 2
            dev, n = self.device, len(atoms)
            static = {
                "numbers": torch.from_numpy(atoms.numbers.astype(np.int64)).to(dev),
                "cell": torch.from_numpy(atoms.cell.array[None].copy()).to(dev, self.dtype),
                "pbc": torch.from_numpy(atoms.pbc[None].copy()).to(dev),
                "batch": torch.zeros(n, dtype=torch.long, device=dev),
                "n_atoms": torch.tensor([n], device=dev),
            }
            self._nbrs = _Neighbours(
                edge_index=torch.from_numpy(ei).to(self.device),
                edge_shift=torch.from_numpy(es).to(self.device, self.dtype),
                static=static,
                pairs=ei[:, :half],
                pair_shift=es[:half],
                positions=atoms.positions.copy(),
                cell=atoms.cell.array.copy(),
                pbc=atoms.pbc.copy(),
                numbers=atoms.numbers.copy(),
            )
            self.n_builds += 1
        nb = self._nbrs
        edge_index, edge_shift = nb.edge_index, nb.edge_shift
        if self.skin > 0 and nb.pairs.shape[1] > PRUNE_MIN_PAIRS:
            edge_index, edge_shift = self._pruned(atoms, nb)
        return Batch(
            positions=torch.from_numpy(atoms.positions).to(self.device, self.dtype),
            edge_index=edge_index,
            edge_shift=edge_shift,
            mirrored_edges=True,
            **nb.static,
        )

    def _pruned(self, atoms: Atoms, nb: _Neighbours) -> tuple[torch.Tensor, torch.Tensor]:
        """The skin list cut back to r_c at the current positions (mirrored again).

        Pairs beyond r_c contribute exactly zero (that is when a skin is used at all), so
        dropping them changes nothing but the work: (r_c/(r_c + skin))³ of the edges remain.
        A 1e-6 Å margin leaves pairs at r_c to the model's own cutoff function.
        """
        i, j = nb.pairs
        vec = atoms.positions[j] - atoms.positions[i]
        if nb.pair_shift.any():
            vec += nb.pair_shift @ atoms.cell.array
        keep = np.einsum("ij,ij->i", vec, vec) < (self.graph.cutoff + 1e-6) ** 2
        half = nb.pairs[:, keep]
        shift = nb.pair_shift[keep]
        ei = np.concatenate([half, half[::-1]], axis=1)
        es = np.concatenate([shift, -shift], axis=0)
        return (
            torch.from_numpy(ei).to(self.device),
            torch.from_numpy(es).to(self.device, self.dtype),
        )

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """Changes since the last calculation (ASE API) among what the model depends on.

        The model sees only positions, numbers, cell and periodicity, so only those are
        compared (exactly; ASE's generic comparison of every array costs more than a force call
        of a small molecule, and MD integrators ask several times per step).
        """
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        changes = []
        if not np.array_equal(old.positions, atoms.positions):
            changes.append("positions")
        if not np.array_equal(old.numbers, atoms.numbers):
            changes.append("numbers")
        if not np.array_equal(old.cell.array, atoms.cell.array):
            changes.append("cell")
        if not np.array_equal(old.pbc, atoms.pbc):
            changes.append("pbc")
        return changes

    # -- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, batch: Batch, want_forces: bool, want_stress: bool) -> dict:
        emodel = self.energy_model.model
        derivs = want_forces or want_stress
        out = self._potential(batch, forces=derivs, stress=want_stress)
        if self.force_model is not None:
            with torch.no_grad():
                e_out = emodel(batch)
            out["energy"], out["contributions"] = e_out[emodel.property], e_out["contributions"]
        res = {
            "energy": out["energy"].detach().double().cpu().numpy(),
            "energies": out["contributions"].detach().double().cpu().numpy(),
        }
        if derivs:
            res["forces"] = out["forces"].detach().double().cpu().numpy()
        if want_stress:
            res["stress"] = stress_to_voigt(out["stress"].double())
        if "members" in out and self.force_model is None:  # a committee: its spread
            m = {k: v.double().cpu().numpy() for k, v in out["members"].items()}
            scale = self.energy_model.model.variance_scale
            res["energy_std"] = member_std(m["energy"], scale)
            if derivs:
                res["forces_std"] = member_std(m["forces"], scale)
                res["force_deviation"] = force_deviation(m["forces"])
            if want_stress and "stress" in m:
                res["stress_std"] = member_std(stress_to_voigt(m["stress"]), scale)
        return res

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """ASE entry point: fill ``self.results`` for ``atoms``."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(atoms.pbc.all() and atoms.cell.rank == 3)
        if "stress" in properties and not periodic:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError(
                "stress needs a 3-D periodic cell (atoms.pbc all True and a full cell)"
            )
        # Forces cost one backward pass; stress of a periodic cell almost nothing on top, so it is
        # computed with them and cached for ASE's next request (e.g. cell filters).
        want_forces = "forces" in properties or "stress" in properties or periodic
        res = self._evaluate(self._batch(atoms), want_forces, periodic and want_forces)
        self.results = {
            "energy": float(res["energy"][0]),
            "free_energy": float(res["energy"][0]),
            "energies": res["energies"],
        }
        if "forces" in res:
            self.results["forces"] = res["forces"]
        if "stress" in res:
            self.results["stress"] = res["stress"][0]
        if "energy_std" in res:
            self.results["energy_std"] = float(res["energy_std"][0])
        if "stress_std" in res:
            self.results["stress_std"] = res["stress_std"][0]
        if "force_deviation" in res:
            self.results["forces_std"] = res["forces_std"]
            self.results["force_deviation"] = res["force_deviation"]
            self.results["max_force_deviation"] = float(res["force_deviation"].max())

    def calculate_images(
        self, images: Sequence[Atoms], forces: bool = True, stress: bool = False
    ) -> list[dict]:
        """Energy (eV), per-atom energies, forces (eV/Å) and stress of many images in one batch.

        Returns one results dict per image (the keys of ``Calculator.results``). Does not touch
        the cached neighbour list.
        """
        if not len(images):
            return []
        if stress and not all(a.pbc.all() for a in images):
            raise ValueError("stress needs every image to be 3-D periodic")
        batch = Batch.from_atoms(list(images), self.graph, dtype=self.dtype).to(self.device)
        res = self._evaluate(batch, forces, stress)
        ends = np.cumsum([len(a) for a in images])
        starts = ends - np.array([len(a) for a in images])
        out = []
        for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
            r = {
                "energy": float(res["energy"][k]),
                "free_energy": float(res["energy"][k]),
                "energies": res["energies"][s:e],
            }
            if "forces" in res:
                r["forces"] = res["forces"][s:e]
            if stress:
                r["stress"] = res["stress"][k]
            out.append(r)
        return out


__all__ = ["Calculator", "skin_is_exact"]
