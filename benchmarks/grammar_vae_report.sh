#!/usr/bin/env bash
# Grammar VAE + latent regressors + ICM inverse design on QM9 at CPU scale
# (docs/grammar_vae.md §4-§7, §9; issue 7). Not run in CI.
#
#   bash benchmarks/grammar_vae_report.sh [WORKDIR]      (default runs/gvae)
#
# Steps (each skipped when its output exists, so the script can be re-run after an interruption;
# VAE training resumes from its last checkpoint):
#   1. QM9 SMILES with HOMO/LUMO/gap (eV) and a seeded 80/10/10 split (all 130,831 molecules)
#   2. grammar-vae-qm9-fast on 20,000 training SMILES (VAE_MINUTES of wall time, default 42),
#      with alpha 0.08 (used below) and 0.02
#   3. generative metrics on the test split: reconstruction, prior validity, ELBO, active dims
#   4. latent regressors for LUMO, gap and HOMO (test MAE on the test split)
#   5. baselines: ridge / MLP / random forest (1/3 of the features per split) on Morgan
#      fingerprints, 5-fold CV on 5,000 SMILES (4,000 train + 1,000 val rows of the split), and
#      latent regressors trained on the same 4,000 (+1,000 for early stopping), tested on the
#      13,083 test rows
#   6. SchNet LUMO and gap models (schnet-fast, 20,000 QM9 molecules, 20 min each) as the
#      independent evaluator (the gap model is the one of benchmarks/gschnet_report.sh if present)
#   7. ICM towards LUMO in [-1, 0] eV and gap in [4, 6] eV (targets -0.5 and 5.0 eV), 10^4 and
#      10^5 prior samples, 20 iterations, top 100; no QM9 molecule may be proposed
#   8. independent check: ETKDG + MMFF, GFN2-xTB relaxation, SchNet LUMO/gap, for the candidates
#      and for 300 training molecules under the same evaluator
set -euo pipefail
W=${1:-runs/gvae}
DA=${DA:-.venv/bin/deepatoms}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
mkdir -p "$W"
D="$W/qm9_smiles.csv"
[ -f "$D" ] || $DA data qm9-smiles --out "$D"
[ -f "$W/vae/model.pt" ] || $DA vae train --data "$D" --preset grammar-vae-qm9-fast \
    --set train.max_time="${VAE_MINUTES:-42}" --set train.num_threads=1 --out "$W/vae"
# the same with alpha = 0.02 (Paper D's grid), for the alpha comparison of the report
[ -f "$W/vae_a002/model.pt" ] || $DA vae train --data "$D" --preset grammar-vae-qm9-fast \
    --set train.alpha=0.02 --set train.max_time="${VAE_MINUTES:-42}" --set train.num_threads=1 \
    --out "$W/vae_a002"
[ -f "$W/vae/metrics.json" ] || $DA vae evaluate "$W/vae" --data "$D" --split test \
    --samples 1000 --iw-samples 0
[ -f "$W/vae/regressors.pt" ] || $DA vae regress "$W/vae" --data "$D" --property lumo \
    --property gap --property homo --set regressor.max_epochs="${REG_EPOCHS:-60}"
if [ ! -f "$W/qm9_smiles_5k_cv.csv" ]; then
    $PY - "$D" "$W" <<'PYEOF'
import sys
import pandas as pd
d, w = pd.read_csv(sys.argv[1]), sys.argv[2]
tr = d[d.split == "train"].sample(4000, random_state=0)
va = d[d.split == "val"].sample(1000, random_state=0)
pd.concat([tr, va, d[d.split == "test"]]).to_csv(f"{w}/qm9_smiles_4k_train.csv", index=False)
pd.concat([tr, va]).drop(columns="split").to_csv(f"{w}/qm9_smiles_5k_cv.csv", index=False)
PYEOF
fi
[ -f "$W/baselines_5k.json" ] || $DA design baselines --data "$W/qm9_smiles_5k_cv.csv" \
    --property lumo --property gap --property homo --folds 5 --rf-max-features 0.333 \
    --out "$W/baselines_5k.json"
[ -f "$W/vae/regressors_4k.pt" ] || $DA vae regress "$W/vae" --data "$W/qm9_smiles_4k_train.csv" \
    --property lumo --property gap --property homo --set regressor.max_epochs=300 \
    --set regressor.patience=30 --out "$W/vae/regressors_4k.pt"
G=${GAP_MODEL:-runs/gschnet/gap_schnet/model.pt}
if [ ! -f "$G" ]; then
    G="$W/gap_schnet/model.pt"
    [ -f "$G" ] || $DA data qm9 --out "$W/qm9.h5"
    [ -f "$G" ] || $DA train --preset schnet-fast --data "$W/qm9.h5" --target gap \
        --n-train 20000 --n-val 2000 --max-time 20 --set train.num_threads=1 --out "$W/gap_schnet"
fi
Q=${QM9_H5:-runs/gschnet/qm9gen.h5}
[ -f "$Q" ] || { Q="$W/qm9.h5"; [ -f "$Q" ] || $DA data qm9 --out "$Q"; }
[ -f "$W/lumo_schnet/model.pt" ] || $DA train --preset schnet-fast --data "$Q" --target lumo \
    --n-train 20000 --n-val 2000 --max-time 20 --set train.num_threads=1 --out "$W/lumo_schnet"
for N in 10000 100000; do
    O="$W/design"
    [ "$N" = 10000 ] || O="$W/design_1e5"
    mkdir -p "$O"
    [ -f "$O/candidates.csv" ] || $DA design run "$W/vae" --target lumo=-0.5 --target gap=5.0 \
        --window lumo=-1:0 --window gap=4:6 --samples "$N" --iterations 20 --top 100 --seed 0 \
        --training "$D" --out "$O/candidates.csv" --xyz "$O/candidates.extxyz"
    [ -f "$O/check/metrics.json" ] || $DA design check "$O/candidates.csv" \
        --model lumo="$W/lumo_schnet/model.pt" --model gap="$G" --window lumo=-1:0 \
        --window gap=4:6 --reference "$D" --reference-sample 300 --xtb-relax --xtb-orbitals \
        --out "$O/check"
done
