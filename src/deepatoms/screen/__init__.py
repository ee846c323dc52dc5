"""Screening of hypothetical crystals: prototypes, element substitution, ranking (docs/position_free_crystals.md §5, §7).

- :mod:`.prototypes`: the AFLOW prototype library bundled with pymatgen and user CIFs, each with
  its species sites (A, B, …) and the site permutations that are symmetries;
- :mod:`.scaling`: the volume rule that gives a substituted prototype a sensible size (Å);
- :mod:`.candidates`: composition requests and the stream of candidate structures (chunked);
- :mod:`.rank`: predictions in bounded memory, ranking per composition, the DFT window flag and
  the ground-state gap ΔE_c against reference energies;
- :mod:`.output`: the ranked CSV and the ASE database of the best candidates;
- :mod:`.run`: one screening run from a model file to the output folder;
- :mod:`.cli`: ``deepatoms screen``.
"""
