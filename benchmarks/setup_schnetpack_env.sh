#!/usr/bin/env bash
# Create .venv-spk (repository root): a separate benchmark environment with SchNetPack 2.1.1 beside
# deepatoms, so benchmarks/throughput.py and benchmarks/qm9_accuracy.py can run both side by side.
#
#   bash benchmarks/setup_schnetpack_env.sh          # create or complete .venv-spk (idempotent)
#   FORCE=1 bash benchmarks/setup_schnetpack_env.sh  # rebuild it from scratch
#
# torch==2.13.0 is installed FIRST (the CPU wheel); schnetpack is then installed with a pip
# constraint that pins torch, so its own (unpinned) torch requirement cannot pull a CUDA build and
# several GB of nvidia-* packages. The script fails if any nvidia-* package ends up installed.
# `pip check` reports one known conflict afterwards (schnetpack wants sympy<=1.12; see step 2).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-spk}
TORCH_VERSION=2.13.0
SPK_VERSION=2.1.1
STAMP="$VENV/.spk-installed-$SPK_VERSION"

if [[ "${FORCE:-0}" == "1" ]]; then
  rm -rf "$VENV"
fi
if [[ -f "$STAMP" ]] && "$VENV/bin/python" -c "import schnetpack, deepatoms" 2>/dev/null; then
  echo "$VENV is ready (schnetpack $SPK_VERSION, torch $TORCH_VERSION, deepatoms); FORCE=1 rebuilds it"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q)

"${PIP[@]}" --upgrade pip
# 1. torch first: the CPU wheel (no CUDA dependencies).
"${PIP[@]}" "torch==$TORCH_VERSION"
# 2. schnetpack. Its wheel declares `sympy<=1.12`, but torch 2.13 requires `sympy>=1.13.3`, so pip
#    cannot resolve the two together (ResolutionImpossible). SchNetPack uses sympy only for
#    `sympy.physics.wigner.clebsch_gordan` (schnetpack/nn/ops/so3.py, SO3net), which sympy 1.13+
#    still has. So: schnetpack itself with --no-deps, then its declared runtime requirements without
#    the sympy upper bound (and without `pre-commit` and `black`, developer tools that its metadata
#    lists as runtime requirements), all under a constraint that holds torch at $TORCH_VERSION.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==$TORCH_VERSION" >"$constraints"
"${PIP[@]}" -c "$constraints" --no-deps "schnetpack==$SPK_VERSION"
"${PIP[@]}" -c "$constraints" "numpy>=2.0.0" "sympy>=1.13.3" "ase>=3.21" h5py pyyaml \
  "hydra-core>=1.1.0" "pytorch-lightning>=2.0.0" torchmetrics "hydra-colorlog>=1.1.0" rich \
  fasteners dirsync torch-ema "matscipy>=1.1.0" "tensorboard>=2.17.1" "tensorboardX>=2.6.2.2" \
  tqdm protobuf
# 3. deepatoms itself (editable), same constraint.
"${PIP[@]}" -c "$constraints" -e .

# 4. schnetpack 2.1.1 does `from torch.utils.data.dataloader import _collate_fn_t, T_co`
#    (schnetpack/data/loader.py); torch 2.13 no longer defines T_co there, so `import schnetpack`
#    fails with ImportError. A start-up hook (.pth file) in this venv defines the missing TypeVar
#    before anything imports schnetpack; the benchmarks apply the same shim themselves.
site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cat >"$site/_spk_torch_compat.py" <<'PYEOF'
"""Compatibility shim for schnetpack 2.1.1 on torch >= 2.x without dataloader.T_co (benchmarks)."""
import typing

try:
    import torch.utils.data.dataloader as _dl

    if not hasattr(_dl, "T_co"):
        _dl.T_co = typing.TypeVar("T_co", covariant=True)
except Exception:  # never break interpreter start-up
    pass
PYEOF
echo "import _spk_torch_compat" >"$site/_spk_torch_compat.pth"

# Checks: torch unchanged and CPU-only, no nvidia-* packages, both libraries import.
"$PY" - <<PYEOF
import torch, schnetpack, deepatoms
assert torch.__version__.split("+")[0] == "$TORCH_VERSION", torch.__version__
assert torch.version.cuda is None, f"torch is a CUDA build ({torch.version.cuda})"
from importlib.metadata import version
print(f"torch {torch.__version__}, schnetpack {version('schnetpack')}, deepatoms {version('deepatoms')}")
PYEOF
nvidia=$("$PY" -m pip list 2>/dev/null | grep -i nvidia || true)
if [[ -n "$nvidia" ]]; then
  echo "ERROR: CUDA packages were installed into $VENV:" >&2
  echo "$nvidia" >&2
  exit 1
fi
touch "$STAMP"
echo "$VENV is ready: run '$VENV/bin/python benchmarks/throughput.py'"
