#!/usr/bin/env bash
# Ethanol MD data with GFN2-xTB (tblite): Langevin MD at 500 K, 0.5 fs steps, a frame every
# 10 steps (5 fs), 5,000 frames = 25 ps after 1,000 steps of equilibration; an MD17-like
# stand-in (docs/property_models.md §8.2). About a minute and a half on 2 CPU cores.
# Usage: examples/datagen_ethanol.sh [OUT.h5]
set -euo pipefail
out="${1:-ethanol_500K.h5}"

deepatoms datagen md --molecule ethanol --calculator xtb --temperature 500 --timestep 0.5 \
  --frames 5000 --stride 10 --equilibration 1000 --seed 0 --out "$out" --overwrite
deepatoms data info "$out"
