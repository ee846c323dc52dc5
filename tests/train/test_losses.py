"""Energy–force loss (Schütt 2018 thesis Eq. 5.7) on hand-made numbers."""

from __future__ import annotations

import pytest
import torch

from deepatoms.train.losses import energy_force_loss, force_term_weight, per_system_force_error


def _case():
    # Two systems: 1 atom and 2 atoms.
    e_pred, e_ref = torch.tensor([1.0, -2.0]), torch.tensor([0.0, 0.0], dtype=torch.float64)
    f_pred = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    f_ref = torch.zeros(3, 3, dtype=torch.float64)
    batch, n_atoms = torch.tensor([0, 1, 1]), torch.tensor([1, 2])
    return e_pred, e_ref, f_pred, f_ref, batch, n_atoms


def test_per_system_force_term():
    _, _, f_pred, f_ref, batch, n = _case()
    # system 0: |(1,0,0)|² / 1 = 1; system 1: (4 + 0) / 2 = 2
    torch.testing.assert_close(
        per_system_force_error(f_pred, f_ref, batch, n), torch.tensor([1.0, 2.0])
    )


@pytest.mark.parametrize(
    ("rho", "weight", "expected"),
    [
        # mean over systems of ρ ΔE² + w·force term: ((ρ·1 + 1) + (ρ·4 + 2)) / 2
        (0.01, "1", (0.01 + 1 + 0.04 + 2) / 2),
        (0.0, "1", 1.5),
        (0.25, "1-rho", (0.25 + 0.75 * 1 + 1.0 + 0.75 * 2) / 2),
    ],
)
def test_energy_force_loss_exact(rho, weight, expected):
    loss = energy_force_loss(*_case(), rho=rho, force_weight=weight)
    assert float(loss) == pytest.approx(expected, rel=1e-7)


def test_energy_only_is_mse():
    e_pred, e_ref, *_, batch, n = _case()
    loss = energy_force_loss(e_pred, e_ref, None, None, batch, n)
    assert float(loss) == pytest.approx(2.5)


def test_force_weight_errors():
    with pytest.raises(ValueError, match="rho must be >= 0"):
        force_term_weight(-0.1, "1")
    with pytest.raises(ValueError, match="force_weight must be one of"):
        force_term_weight(0.1, "half")
    with pytest.raises(ValueError, match="rho <= 1"):
        force_term_weight(2.0, "1-rho")
