"""``python -m expose_cli ...`` (and ``torchrun ... -m expose_cli infer ...``): the ``expose`` command."""

import sys

from expose_cli.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
