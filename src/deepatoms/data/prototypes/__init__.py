"""Crystal prototypes (pymatgen's AFLOW library or CIF files), element substitution onto their
sites, and cell rescaling for new compositions."""
