"""The ``forgeml`` command line (typer), one module per command group."""
