"""The `expose` command line: one small module per subcommand, registered in :mod:`.app`."""
