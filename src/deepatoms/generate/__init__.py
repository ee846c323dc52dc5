"""G-SchNet generation: partial-molecule batches, training traces, grids and sampling
(docs/gschnet.md §6, §8)."""
