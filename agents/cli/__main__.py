"""`python -m agents.cli`: the same as the `tessera` console script."""

from agents.cli import main

main()
