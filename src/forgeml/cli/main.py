"""Entry point of the ``forgeml`` command (placeholder until the CLI lands)."""


def main() -> None:
    raise SystemExit("forgeml CLI is not built yet")
