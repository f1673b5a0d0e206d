"""The ``forgeml`` command: one typer app, command groups in their own modules.

Only typer and rich load at start-up; each command imports the workflow it needs when it
runs, which keeps ``forgeml --help`` fast. Every :class:`~forgeml.errors.ForgeError`
becomes one line on stderr and its exit code (2 usage/config, 1 run failure) — never a
traceback for a user mistake.
"""

from __future__ import annotations

import os
import sys

import typer

from forgeml.cli import (
    ab_cmd,
    config_cmd,
    demo_cmd,
    deploy_cmd,
    init_cmd,
    loadtest_cmd,
    models_cmd,
    monitor_cmd,
    predict_cmd,
    run_cmd,
    serve_cmd,
    validate_cmd,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="forgeml",
    help="forgeml: from a raw table to a tuned, evaluated, versioned model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(init_cmd.init)
app.command("run")(run_cmd.run)
app.command("predict")(predict_cmd.predict)
app.command("validate")(validate_cmd.validate)
app.command("demo")(demo_cmd.demo)
app.command("serve")(serve_cmd.serve)
app.command("loadtest")(loadtest_cmd.loadtest)
app.add_typer(config_cmd.app, name="config")
app.add_typer(models_cmd.app, name="models")
app.add_typer(deploy_cmd.app, name="deploy")
app.add_typer(monitor_cmd.app, name="monitor")
app.add_typer(ab_cmd.app, name="ab")


@app.command("version")
def version() -> None:
    """Print the forgeml version."""
    from forgeml import __version__

    typer.echo(__version__)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from forgeml.errors import ForgeError

    try:
        app(args=argv, prog_name="forgeml")
    except ForgeError as exc:
        _fail(f"error: {exc}", exc.exit_code, exc)
    except KeyboardInterrupt:
        _fail("interrupted", 130, None)
    except BrokenPipeError:  # `forgeml models list | head`
        sys.stderr.close()
        raise SystemExit(1) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:  # a bug: say so in one line; the traceback is one env var away
        _fail(
            f"internal error: {type(exc).__name__}: {exc} "
            "(set FORGEML_DEBUG=1 for the traceback and please report it)",
            1,
            exc,
        )


def _fail(message: str, code: int, exc: BaseException | None) -> None:
    from forgeml.cli.output import err_console

    if exc is not None and os.environ.get("FORGEML_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    err_console.print(message, style="bold red")
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
