"""The ``autoseg`` command line: one small module per subcommand, registered in ``main``."""
