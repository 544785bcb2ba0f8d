"""`python -m bridge_server.cli`: the same as the `avatar-bridge` command."""
import sys

from bridge_server.cli import main

sys.exit(main())
