"""``python -m signing_gateway.cli``."""

from signing_gateway.cli import main

main()
