"""deepatoms: deep learning for molecules and materials.

Layers (imports point down only): ``cli`` → ``apps`` → ``train`` / ``models`` → ``nn`` → ``data``.
Units inside the package are eV and Å throughout.
"""

__version__ = "0.1.0"
