"""One module per ``sharebench`` subcommand: ``HELP``, ``add_arguments``, ``run``."""
