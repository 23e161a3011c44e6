"""Running the app from inside a command (the demo runs `expose infer`)."""

from __future__ import annotations


def invoke(argv: list[str]) -> int:
    from expose_cli.cli.app import main

    return main(argv)
