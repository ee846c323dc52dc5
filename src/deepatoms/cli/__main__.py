"""``python -m deepatoms.cli``: the same as the ``deepatoms`` command."""

from deepatoms.cli import main

main()
