"""Default settings of the prototype screening set (``deepatoms datagen prototypes``); plain
data, cheap to import (the command line shows them in its help)."""

#: EMT metals (ASE's EMT also has H, C, N, O, which are not metals on these lattices).
DEFAULT_ELEMENTS = ("Al", "Cu", "Ni", "Pd", "Ag", "Pt", "Au")
DEFAULT_ARITIES = (1, 2, 3)
#: Strukturbericht designations of the default prototypes (AFLOW library).
DEFAULT_PROTOTYPES = (
    "A1", "A2", "A3",
    "L1_2", "L1_0", "L1_1", "B2", "B1", "B32", "C11_b", "C15", "D0_3", "D0_22", "D0_19", "A15",
    "L2_1", "C1_b",
)  # fmt: skip

__all__ = ["DEFAULT_ARITIES", "DEFAULT_ELEMENTS", "DEFAULT_PROTOTYPES"]
