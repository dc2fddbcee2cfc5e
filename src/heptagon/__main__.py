"""``python -m heptagon`` runs the command line."""

from heptagon.cli import main

main()
