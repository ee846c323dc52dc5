"""The names re-exported from ``deepatoms`` and the aliases of modules that moved in 0.2."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import deepatoms
from deepatoms.moved import MOVED


def test_every_public_name_resolves():
    for name in deepatoms.__all__:
        assert getattr(deepatoms, name) is not None, name
    assert "load_model" in dir(deepatoms)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        deepatoms.nope  # noqa: B018


@pytest.mark.parametrize("module", ["deepatoms", "deepatoms.cli"])
def test_import_loads_no_heavy_library(module):
    """``import deepatoms`` and the command line's start (``deepatoms --help``) stay fast."""
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('torch', 'ase', 'lightning', 'numpy') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_module_still_imports_and_points_to_its_new_home(old):
    new_module, renamed = MOVED[old]
    importlib.import_module(new_module)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new_module}"):
        sys.modules.pop(old, None)
        module = importlib.import_module(old)
    for name, target in renamed.items():
        if " " in target:  # no drop-in replacement: the error says what to use
            with pytest.raises(
                ImportError, match=f"{old}.{name} was removed in deepatoms 0.2: .*use "
            ):
                getattr(module, name)
        else:
            mod, attr = target.split(":")
            with pytest.warns(DeprecationWarning, match=f"moved to {mod}.{attr}"):
                assert getattr(module, name) is getattr(importlib.import_module(mod), attr)


def test_an_old_import_gives_the_new_object_with_a_warning():
    from deepatoms.train.protocol import fit
    from deepatoms.workflows.crossval import cross_validate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from deepatoms.apps.crossval import cross_validate as old_cv
        from deepatoms.apps.train import train as old_train
    assert old_cv is cross_validate and old_train is fit
    assert any("deepatoms.apps.train.train moved to deepatoms.train.protocol.fit" in str(w.message)
               for w in caught)  # fmt: skip


def test_a_name_that_never_existed_is_a_plain_import_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ImportError, match=r"deepatoms.density.grid \(now deepatoms.data."
                           r"voxels.grid\) has no name 'nope'"):  # fmt: skip
            from deepatoms.density.grid import nope  # noqa: F401


def test_no_public_name_is_also_a_sub_package_or_module():
    """``deepatoms.X`` must mean one thing: a function named like a sub-package would be
    replaced by the package as soon as the package is imported."""
    from pathlib import Path

    root = Path(deepatoms.__file__).parent
    modules = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    assert not (set(deepatoms.__all__) & modules)
    importlib.import_module("deepatoms.train")  # the package of the training protocol
    assert callable(deepatoms.fit) and deepatoms.fit.__module__ == "deepatoms.workflows.training"


def test_results_refuse_keys_that_shadow_dict_methods():
    from deepatoms.core.results import Result

    assert Result(mae=1.0).mae == 1.0
    with pytest.raises(ValueError, match=r"keys \['items', 'values'\] shadow dict methods"):
        Result(values=[1], items=[2])
