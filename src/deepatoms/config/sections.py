"""The config sections of every model family, with defaults and allowed values.

A family's schema (:mod:`deepatoms.models.registry`) combines a ``model`` section (checked by
the model builder) with sections from here:

- atomistic families (SchNet, DTNN, NMP-edge, MPNN/VIMPNN): :data:`GRAPH`, :data:`DATASET`,
  :data:`TRAIN_ATOMISTIC`;
- G-SchNet: :data:`GRAPH`, :data:`DATASET_SPLIT`, :data:`TRAIN_GSCHNET`;
- grammar VAE: :data:`STRINGS`, :data:`TRAIN_GRAMMAR_VAE`, :data:`REGRESSOR` (the settings its
  latent regressors are trained with); a regressor run: :data:`REGRESSOR_DATA`,
  :data:`TRAIN_REGRESSORS`;
- density VAE: :data:`GRID`, :data:`CRYSTALS`, :data:`TRAIN_DENSITY`.

Every family shares the keys of :data:`TRAIN_COMMON` (seed, batches, stopping limits and the
hardware the Lightning ``Trainer`` runs on). Keys marked resumable may change between the calls
that resume a run.
"""

from __future__ import annotations

from deepatoms.config.schema import (
    Schema,
    choice,
    count_or_fraction,
    flag,
    free,
    integer,
    number,
    numbers,
    text,
)

__all__ = [
    "CRYSTALS",
    "DATASET",
    "DATASET_SPLIT",
    "GRAPH",
    "GRID",
    "HEADER",
    "REGRESSOR",
    "REGRESSOR_DATA",
    "STRINGS",
    "TRAIN_ATOMISTIC",
    "TRAIN_COMMON",
    "TRAIN_DENSITY",
    "TRAIN_GRAMMAR_VAE",
    "TRAIN_GSCHNET",
    "TRAIN_REGRESSORS",
]

#: Top-level keys every config has besides its sections.
HEADER = {
    "name": text(None, doc="preset name"),
    "description": text("", doc="one line shown by `deepatoms presets`"),
    "reference": text("", doc="paper, table or section the settings come from"),
}

TRAIN_COMMON = Schema(
    {
        "seed": integer(0, low=0, doc="seed of the split, initialisation and shuffling"),
        "batch_size": integer(32, low=1),
        "eval_batch_size": integer(100, low=1),
        "lr": number(1.0e-3, low=0, low_open=True),
        "max_epochs": integer(1000, low=-1, resumable=True, doc="-1: no limit"),
        "max_steps": integer(-1, low=-1, nullable=True, resumable=True, doc="-1 or null: none"),
        "max_time": number(None, low=0, low_open=True, resumable=True, doc="minutes in total"),
        "early_stopping_patience": integer(
            50, low=1, resumable=True, doc="validations without improvement"
        ),
        "val_every_steps": integer(None, low=1, doc="null: validate after every epoch"),
        "gradient_clip": number(None, low=0, low_open=True),
        "accelerator": choice("cpu", "auto", "cpu", "gpu", "cuda", "mps", resumable=True),
        "devices": free(1, resumable=True, doc="count, list of indices or 'auto'"),
        "strategy": choice("auto", "auto", "ddp", "ddp_spawn", resumable=True),
        "precision": choice(
            "32", "32", "64", "bf16-mixed", "16-mixed", doc="Lightning's precision setting"
        ),
        "num_threads": integer(None, low=1, resumable=True, doc="CPU threads of torch"),
    }
)

#: How a model sees a structure (``deepatoms.data.neighbors.GraphSpec``).
GRAPH = Schema(
    {
        "kind": choice("cutoff", "all", "cutoff", "knn", "voronoi", "bonds"),
        "cutoff": number(5.0, low=0, low_open=True, nullable=True, doc="Å"),
        "k": integer(24, low=1, doc="neighbours of a knn graph"),
        "knn_strict": flag(False),
        "omega_cut": number(0.2, low=0, doc="smallest Voronoi facet solid angle (sr)"),
    }
)

#: Which systems of a dataset file train, validate and test.
DATASET_SPLIT = Schema(
    {
        "n_train": count_or_fraction(0.8),
        "n_val": count_or_fraction(0.1),
        "n_test": count_or_fraction(None),
        "split_seed": integer(None, low=0, doc="null: train.seed"),
        "split_column": text(None, doc="per-system train/val/test labels to split by"),
        "group_by": text(None, doc="per-system column whose groups stay whole"),
    }
)

#: A target property of a dataset file, its normalisation and optional forces.
DATASET = DATASET_SPLIT.extend(
    target=text(None, doc="per-system property to learn"),
    target_unit=text(
        None, doc="unit of the target when the dataset records none (e.g. eV; dimensionless: none)"
    ),
    atomref=choice("auto", "auto", "dataset", "fit", "none"),
    readout=choice("auto", "auto", "sum", "mean"),
    mean_readout_targets=free(
        [
            "homo",
            "lumo",
            "gap",
            "formation_energy_per_atom",
            "heat_ref",
            "heat_all",
            "delta_e",
            "e_above_hull",
        ],
        doc="intensive targets: mean readout when readout is auto",
    ),
    std_ddof=integer(0, low=0),
    forces=text(None, doc="per-atom force label [N,3] (eV/Å) trained with the energy"),
    scale=choice("auto", "auto", "energy", "forces"),
)

TRAIN_ATOMISTIC = TRAIN_COMMON.extend(
    optimizer=choice("adam", "adam", "sgd"),
    momentum=number(0.9, low=0),
    weight_decay=number(0.0, low=0),
    lr_schedule=choice("exponential", "exponential", "plateau", "linear", "none", nullable=True),
    lr_linear_window=numbers([0.1, 0.9], low=0),
    lr_decay=number(0.96, low=0, low_open=True),
    lr_decay_steps=integer(100000, low=1),
    lr_staircase=flag(False),
    plateau_factor=number(0.5, low=0, high=1, low_open=True),
    plateau_patience=integer(10, low=0),
    min_lr=number(0.0, low=0),
    dtype=choice("float32", "float32", "float64"),
    rho=number(0.01, low=0, high=1, doc="energy weight of the energy-force loss"),
    force_weight=choice("1", "1", "1-rho"),
    init_statistics=choice("keep", "keep", "refit", doc="output statistics when fine-tuning"),
    init_force=flag(False, doc="fine-tune even when elements or target do not match"),
)

TRAIN_GSCHNET = TRAIN_ATOMISTIC.extend(
    draw_random_samples=integer(0, low=0, doc="trace steps per molecule and epoch (0: all)"),
    label_width_factor=number(0.1, low=0, doc="γ = w·Δ of the smoothed distance labels"),
    loss_weighting=choice("default", "default", "paper"),
)

#: A CSV of strings for the grammar VAE.
STRINGS = Schema(
    {
        "grammar": text("smiles", nullable=False, doc="smiles, polymer, polymer-typed or .cfg"),
        "max_len": integer(80, low=1, doc="derivation steps T"),
        "string_column": text(None, doc="null: 'string', else 'smiles'"),
        "split_column": text("split", doc="per-row train/val/test labels, when present"),
        "n_val": count_or_fraction(0.1, nullable=False),
        "max_train": integer(None, low=1, doc="random subset of the training rows"),
        "max_val": integer(None, low=1),
        "split_seed": integer(None, low=0),
    }
)

TRAIN_GRAMMAR_VAE = TRAIN_COMMON.extend(
    batch_size=integer(64, low=1),
    eval_batch_size=integer(512, low=1),
    lr_step_epochs=integer(100, low=0, doc="halve the lr every this many epochs (0: never)"),
    lr_factor=number(0.5, low=0, low_open=True),
    max_epochs=integer(300, low=-1, resumable=True),
    early_stopping_patience=integer(30, low=1, resumable=True),
    alpha=number(0.08, low=0, doc="KL weight α"),
    alpha_warmup_epochs=integer(0, low=0),
    free_bits=number(0.0, low=0),
    mask_in_loss=flag(False),
    exclude_padding=flag(False),
    recon_check=integer(1000, low=0, doc="validation strings for the reconstruction accuracy"),
)

#: The latent property regressors of a grammar VAE (Jørgensen et al. 2018, Paper D).
REGRESSOR = Schema(
    {
        "hidden": numbers([512, 512, 256], low=1),
        "dropout": number(0.2, low=0, high=1),
        "dropout_after": numbers([2, 3], low=1),
        "l2": number(1.0e-5, low=0),
        "lr": number(1.0e-3, low=0, low_open=True),
        "momentum": number(0.9, low=0),
        "batch_size": integer(64, low=1),
        "max_epochs": integer(1000, low=1, resumable=True),
        "patience": integer(50, low=1),
        "n_val": number(0.1, low=0, high=1, low_open=True),
        "seed": integer(0, low=0),
    }
)

#: A run that fits latent regressors: the latent space and the CSV of strings with properties.
REGRESSOR_DATA = Schema(
    {
        "latent_space": text(None, nullable=False, doc="the grammar-VAE model file"),
        "string_column": text(None, doc="null: 'string', else 'smiles'"),
        "split_column": text("split", doc="train rows are fitted, val rows stop early"),
        "n_val": number(0.1, low=0, high=1, low_open=True, doc="without val rows: this fraction"),
    }
)

TRAIN_REGRESSORS = TRAIN_COMMON.extend(
    batch_size=integer(64, low=1),
    eval_batch_size=integer(8192, low=1),
    lr=number(1.0e-3, low=0, low_open=True),
    momentum=number(0.9, low=0),
    l2=number(1.0e-5, low=0, doc="λ of the L2 penalty on the weight matrices"),
    max_epochs=integer(1000, low=1, resumable=True),
    early_stopping_patience=integer(50, low=1, resumable=True),
)

#: The voxel grid of the density VAE (``deepatoms.data.voxels.grid.GridSpec``).
GRID = Schema(
    {
        "n": integer(30, low=2, doc="voxels per side"),
        "box": number(10.0, low=0, low_open=True, doc="Å"),
        "sigma": number(1.0, low=0, low_open=True, doc="Å"),
        "species_radius": number(0.5, low=0, doc="Å"),
        "cutoff_sigmas": number(4.0, low=0, low_open=True),
        "species_nearest_voxel": flag(False),
    }
)

#: Crystals for the density VAE.
CRYSTALS = Schema(
    {
        "regime": choice("single", "single", "repeated"),
        "rotations_per_crystal": integer(3, low=1),
        "max_side": number(10.0, low=0, low_open=True, doc="Å"),
        "classes": choice("full", "full", "compact"),
        "split": numbers([0.8, 0.1, 0.1], low=0),
        "centre": choice("cell", "cell", "centroid"),
        "rotate": flag(True),
        "aligned_first": flag(True),
        "resample_each_epoch": flag(False),
        "cache": flag(False),
    }
)

TRAIN_DENSITY = TRAIN_COMMON.extend(
    batch_size=integer(24, low=1),
    eval_batch_size=integer(24, low=1),
    lr=number(1.0e-5, low=0, low_open=True),
    weight_decay=number(0.0, low=0),
    beta=number(1.0, low=0),
    gamma=number(0.1, low=0),
    seg_loss=choice("ce", "ce", "bce"),
    recon_reduction=choice("mean", "mean", "sum"),
    atom_class_weight=number(1.0, low=0, low_open=True),
    seg_input_weight=number(0.0, low=0),
    max_epochs=integer(200, low=-1, resumable=True),
    max_steps=integer(None, low=-1, resumable=True),
    early_stopping_patience=integer(20, low=1, resumable=True),
    accelerator=choice("auto", "auto", "cpu", "gpu", "cuda", "mps", resumable=True),
    num_workers=integer(0, low=0, resumable=True),
)
