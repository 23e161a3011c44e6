"""``python -m expose_cli ...`` runs the ``expose`` command (torchrun launches it this way)."""

import sys

from expose_cli.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
