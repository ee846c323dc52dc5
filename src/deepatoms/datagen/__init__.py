"""Labelled data from reference calculators (xtb via tblite, EMT via ASE).

- :mod:`.structures`: starting molecules (names, SMILES) and bulk metals/alloys;
- :mod:`.calculators`: reference calculators with provenance records;
- :mod:`.md`: Langevin MD sampling of energies, forces and stress;
- :mod:`.cli`: the ``deepatoms datagen`` commands.
"""
