"""The library functions behind every command: the public Python API of deepatoms.

Each function takes typed arguments, writes its files atomically, reports progress only when
``progress=True`` and returns a result object (a dict with attribute access) instead of
printing. The command line (:mod:`deepatoms.cli`) only parses, calls one of these and prints.

- :mod:`.datasets`, :mod:`.crystal_data`: build and import datasets (QM9, MD17, structures,
  CIF tables, Materials Project JSON, SMILES and polymer strings);
- :mod:`.training`, :mod:`.crossval`: train (or resume) any family from a preset, k-fold
  cross-validation;
- :mod:`.evaluation`, :mod:`.curves`, :mod:`.generated`: test errors, predictions, energy
  curves, generated-molecule reports;
- :mod:`.simulation`: relaxation, MD, vibrations and scans with a model;
- :mod:`.screening`, :mod:`.datagen`: candidate screening, labelled data from reference
  calculators;
- :mod:`.generation`, :mod:`.grammar_vae`, :mod:`.design`, :mod:`.crystals`: G-SchNet
  sampling, grammar-VAE regressors and sampling, inverse design, density-VAE crystals.

The most used functions are re-exported from :mod:`deepatoms` (see docs/python-api.md).
"""
