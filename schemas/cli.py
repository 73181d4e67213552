"""`hub schemas …`: the contract's JSON Schemas as a registry in the repository.

Mount with `app.add_typer(schemas_app, name="schemas")`.
"""

from __future__ import annotations

from typing import Annotated

import typer

schemas_app = typer.Typer(help="The contract's JSON Schemas: compatibility between versions.",
                          no_args_is_help=True)


@schemas_app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    base: Annotated[str, typer.Option(
        help="git revision whose schema files count as earlier versions; '' for none")] = "HEAD",
) -> None:
    """Compare the models with the committed schemas and with every earlier version, under
    each type's mode in schemas/compatibility.toml; exit 1 on any problem."""
    from schemas.check import run

    raise typer.Exit(run(as_json=as_json, base=base or None))
