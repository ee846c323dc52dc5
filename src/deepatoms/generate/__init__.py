"""G-SchNet generation: partial-molecule batches, training traces, grids and sampling
(``specs/gschnet.md`` §6, §8)."""
