"""G-SchNet model: bins, smoothed labels, invariances, loss and model files (docs/gschnet.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from f64 import float64_default
from scipy.spatial.transform import Rotation

from deepatoms.generate.steps import ALL_PAIRS, partial_batch
from deepatoms.models.gschnet import (
    TYPE_CLASSES,
    GSchNet,
    distance_bins,
    gschnet_loss,
    smoothed_distance_labels,
    type_class_index,
)
from deepatoms.models.loading import load_model
from deepatoms.models.registry import build_model
from model_helpers import save_atomistic

SMALL = {"name": "gschnet", "n_atom_basis": 16, "n_interactions": 2}


def _model() -> GSchNet:
    torch.manual_seed(0)
    with float64_default():
        return build_model(SMALL)


# Four placed atoms of a small fragment (Å); focus on atom 1, origin at the centre of mass.
ATOMS = np.array([[0.0, 0.0, 0.0], [1.09, 0.0, 0.0], [-0.36, 1.03, 0.0], [-0.36, -0.5, 0.9]])
NUMBERS = np.array([6, 1, 1, 8])


def _step(pos: np.ndarray, focus: int, origin: np.ndarray, numbers=NUMBERS):
    return partial_batch([pos], [numbers], pos[focus][None], origin[None], dtype=torch.float64)


def test_bins_have_300_centres_spaced_15_over_299():
    bins = distance_bins()
    assert bins.shape == (300,)
    assert float(bins[0]) == 0.0 and float(bins[-1]) == 15.0
    np.testing.assert_allclose(np.diff(bins.numpy()), 0.050167, atol=5e-7)


def test_smoothed_labels_on_a_centre_and_midway():
    bins = distance_bins()
    q = smoothed_distance_labels(torch.stack([bins[150], (bins[150] + bins[151]) / 2]), bins)
    on, mid = q[0].numpy(), q[1].numpy()
    assert on.argmax() == 150
    np.testing.assert_allclose(on[148:153], [0.0537, 0.2420, 0.3996, 0.2420, 0.0537], atol=1e-4)
    np.testing.assert_allclose(mid[150:152], [0.3525, 0.3525], atol=1e-4)
    np.testing.assert_allclose(q.sum(-1).numpy(), 1.0, atol=1e-12)


def test_labels_beyond_15_angstrom_and_one_hot_option():
    bins = distance_bins()
    q = smoothed_distance_labels(torch.tensor([15.2, 40.0]), bins)
    assert torch.equal(q, torch.nn.functional.one_hot(torch.tensor([299, 299]), 300).double())
    hard = smoothed_distance_labels(torch.tensor([bins[7] + 0.02, 1.0]), bins, width_factor=0)
    assert hard.sum(-1).tolist() == [1.0, 1.0]
    assert hard.argmax(-1).tolist() == [7, 20]  # 1.0 Å is nearest to 20·0.050167 = 1.0033 Å


def test_type_classes_and_bad_elements():
    assert type_class_index(torch.tensor(TYPE_CLASSES)).tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match=r"found Z = \[16\]"):
        type_class_index(torch.tensor([6, 16]))


def test_type_and_distance_predictions_are_invariant_under_rotation_and_translation():
    model = _model()
    origin = ATOMS.mean(0)
    ref = model(_step(ATOMS, 1, origin), torch.tensor([8]))
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    shift = np.array([3.0, -2.0, 0.7])
    moved = model(_step(ATOMS @ rot.T + shift, 1, origin @ rot.T + shift), torch.tensor([8]))
    torch.testing.assert_close(moved["type_logp"], ref["type_logp"], atol=1e-10, rtol=0)
    torch.testing.assert_close(moved["dist_logp"], ref["dist_logp"], atol=1e-10, rtol=0)
    assert torch.allclose(ref["type_logp"].exp().sum(-1), torch.ones(1, dtype=torch.float64))


def test_permuting_atoms_permutes_distance_rows_and_keeps_types():
    model = _model()
    origin = ATOMS.mean(0)
    ref = model(_step(ATOMS, 1, origin), torch.tensor([6]))
    perm = np.array([2, 0, 3, 1])
    out = model(_step(ATOMS[perm], 3, origin, NUMBERS[perm]), torch.tensor([6]))
    torch.testing.assert_close(out["type_logp"], ref["type_logp"], atol=1e-10, rtol=0)
    node_perm = np.concatenate([[0, 1], 2 + perm])
    torch.testing.assert_close(out["dist_logp"], ref["dist_logp"][node_perm], atol=1e-10, rtol=0)


def test_steps_in_one_batch_equal_steps_alone():
    """Steps do not see each other: a batch of two equals the two single-step batches."""
    model = _model()
    a = partial_batch([ATOMS[:2]], [NUMBERS[:2]], ATOMS[:1], np.zeros((1, 3)), torch.float64)
    b = partial_batch([ATOMS], [NUMBERS], ATOMS[2:3], np.ones((1, 3)), torch.float64)
    both = partial_batch(
        [ATOMS[:2], ATOMS], [NUMBERS[:2], NUMBERS], ATOMS[[0, 2]], [[0.0] * 3, [1.0] * 3],
        torch.float64,
    )  # fmt: skip
    out = model(both, torch.tensor([1, 9]))
    oa, ob = model(a, torch.tensor([1])), model(b, torch.tensor([9]))
    torch.testing.assert_close(out["type_logp"], torch.cat([oa["type_logp"], ob["type_logp"]]))
    torch.testing.assert_close(out["dist_logp"], torch.cat([oa["dist_logp"], ob["dist_logp"]]))


def _fake_out(n_steps: int, n_nodes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "type_logp": torch.log_softmax(
            torch.randn(n_steps, 6, generator=g, dtype=torch.float64), -1
        ),
        "dist_logp": torch.log_softmax(
            torch.randn(n_nodes, 300, generator=g, dtype=torch.float64), -1
        ),
    }


def test_kl_loss_with_one_hot_labels_equals_cross_entropy():
    bins = distance_bins()
    out = _fake_out(2, 5)
    batch = torch.tensor([0, 0, 1, 1, 1])
    placement = torch.tensor([True, True])
    cls = torch.tensor([1, 3])
    d = torch.tensor([1.02, 2.5, 0.0, 1.5, 14.0], dtype=torch.float64)
    loss = gschnet_loss(out, cls, d, batch, placement, bins, width_factor=0.0)
    ce_type = -(out["type_logp"][0, 1] + out["type_logp"][1, 3]) / 2
    idx = (d.unsqueeze(-1) - bins).abs().argmin(-1)
    ce_dist = -out["dist_logp"].gather(1, idx[:, None]).mean()
    torch.testing.assert_close(loss["type"], ce_type)
    torch.testing.assert_close(loss["distance"], ce_dist)
    # Smoothed labels: KL = cross-entropy − label entropy.
    smooth = gschnet_loss(out, cls, d, batch, placement, bins, width_factor=0.1)
    q = smoothed_distance_labels(d, bins)
    ce = -(q * out["dist_logp"]).sum(-1).mean()
    entropy = -(torch.special.xlogy(q, q)).sum(-1).mean()
    torch.testing.assert_close(smooth["distance"], ce - entropy)


def test_distance_terms_vanish_at_stop_steps_and_paper_weighting():
    bins = distance_bins()
    out = _fake_out(3, 8, seed=1)
    batch = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])
    placement = torch.tensor([True, False, True])
    cls = torch.tensor([1, 5, 0])
    d = torch.tensor([1.0, 1.1, 3.0, 4.0, 5.0, 1.2, 2.2, 3.2], dtype=torch.float64)
    base = gschnet_loss(out, cls, d, batch, placement, bins)
    other = d.clone()
    other[2:5] = torch.tensor([9.0, 0.3, 17.0])  # distances at the stop step are ignored
    torch.testing.assert_close(gschnet_loss(out, cls, other, batch, placement, bins)["loss"],
                               base["loss"])  # fmt: skip
    all_stop = gschnet_loss(out, cls, d, batch, torch.zeros(3, dtype=torch.bool), bins)
    assert float(all_stop["distance"]) == 0.0
    # paper: mean over steps of (1/max(i,1)) Σ_j KL_j; steps hold 0, 1 and 1 placed atoms.
    q = smoothed_distance_labels(d, bins)
    kl = (torch.special.xlogy(q, q) - q * out["dist_logp"]).sum(-1)
    want = (kl[0:2].sum() / 1 + kl[5:8].sum() / 1) / 3
    paper = gschnet_loss(
        out, cls, d, batch, placement, bins, weighting="paper", n_placed=torch.tensor([0, 1, 1])
    )
    torch.testing.assert_close(paper["distance"], want)
    want_default = (kl[0:2].sum() + kl[5:8].sum()) / 5
    torch.testing.assert_close(base["distance"], want_default)


def test_model_file_round_trip(tmp_path):
    model = _model()
    batch = _step(ATOMS, 0, np.zeros(3))
    ref = model(batch, torch.tensor([7]))
    save_atomistic(tmp_path / "g.pt", model, ALL_PAIRS, "")
    loaded = load_model(tmp_path / "g.pt")
    assert isinstance(loaded.model, GSchNet)
    assert loaded.model.type_classes == TYPE_CLASSES
    assert loaded.graph == ALL_PAIRS
    assert torch.equal(loaded.model.bins, model.bins)
    out = loaded.model(batch, torch.tensor([7]))
    torch.testing.assert_close(out["dist_logp"], ref["dist_logp"], atol=0, rtol=0)


def test_paper_architecture_and_option_checks():
    model = build_model({"name": "gschnet"})
    widths = [m.out_features for m in model.dist_net]
    assert widths == [128, 171, 214, 257, 300]
    assert [m.out_features for m in model.type_net] == [128, 96, 64, 32, 1]
    rep = model.representation
    assert len(rep.interactions) == 9 and rep.rbf.n_rbf == 25
    assert math.isclose(float(rep.rbf.centers[1]), 10 / 24, rel_tol=1e-6)
    assert math.isclose(rep.rbf.gamma, 1 / (2 * (10 / 24) ** 2), rel_tol=1e-9)  # σ = spacing
    assert rep.cutoff_fn.cutoff == 10.0
    assert rep.interactions[0].filter_net is not rep.interactions[1].filter_net  # untied
    with pytest.raises(ValueError, match="unknown option"):
        build_model({"name": "gschnet", "n_atom_basis": 8, "nonsense": 1})
