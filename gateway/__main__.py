"""`python -m gateway` is the `stepgate` command."""

from gateway.cli import main

main()
