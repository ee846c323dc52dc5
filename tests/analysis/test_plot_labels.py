"""Plots label what they show: force-error histograms count components, learning curves of
potentials show the force MAE in its own panel and unit."""

from __future__ import annotations

import numpy as np
import pytest

import deepatoms.analysis.plots as plots


@pytest.fixture
def captured(monkeypatch):
    """The figures the plotting functions save (kept open for inspection)."""
    figs = []

    def keep(fig, path):
        figs.append(fig)
        fig.savefig(path)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    return figs


def test_force_histogram_counts_components(captured, tmp_path):
    f = np.random.default_rng(0).normal(size=30)
    plots.plot_parity(f, f + 0.1, tmp_path / "f.png", "force component", "eV/Å", 0.1, 0.1,
                      counted="force components")  # fmt: skip
    hist = captured[0].axes[1]
    assert hist.get_ylabel() == "force components"
    assert hist.get_xlabel() == "error (predicted − reference) [eV/Å]"
    plots.plot_parity(f, f, tmp_path / "e.png", "U0", "eV", 0.0, 0.0)
    assert captured[1].axes[1].get_ylabel() == "systems"


def test_learning_curve_of_a_potential_shows_force_mae(captured, tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,val_mae,val_force_mae,train_mae_epoch,train_force_mae_epoch\n"
        "0,10,0.5,0.9,0.6,1.0\n1,20,0.3,0.5,0.4,0.6\n"
    )
    plots.plot_learning_curve(csv, tmp_path / "lc.png", "eV")
    axes = captured[0].axes
    assert [a.get_ylabel() for a in axes] == ["energy MAE [eV]", "force MAE [eV/Å]"]
    csv.write_text("epoch,step,val_mae,train_mae_epoch\n0,10,0.5,0.6\n")
    plots.plot_learning_curve(csv, tmp_path / "lc2.png", "eV")
    assert [a.get_ylabel() for a in captured[1].axes] == ["MAE [eV]"]
