"""`hub console [--port N] [--address A]` serves the console; `hub console add-operator NAME`
creates an operator (or gives one a new password) and prints the password, once."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from hub import commands
from hub.settings import Settings

console_app = typer.Typer(
    help="The ops console in a browser: lag, dead letters and redrive, replays, permits"
         " side by side.", invoke_without_command=True)


@console_app.callback()
def console(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=0, max=65535,
                                      help="port to listen on (0: a free one, logged)")] = 8470,
    address: Annotated[str, typer.Option(
        help="address to listen on: loopback unless operators reach it from elsewhere")
    ] = "127.0.0.1",
) -> None:
    """Serve the console until interrupted (SIGINT/SIGTERM), logging its URL."""
    if ctx.invoked_subcommand is not None:
        return
    from hub.ops.console.server import serving

    async def go(settings: Settings) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with serving(settings, address, port):
            await stop.wait()

    commands.run(go, service=True)


@console_app.command("add-operator")
def add_operator(
    name: Annotated[str, typer.Argument(help="the operator's id, recorded in every look")],
) -> None:
    """Create an operator, or give one a new password: the password is printed once and
    only its scrypt hash is kept (in the hub's secrets, 0600)."""
    from hub.ops.console.auth import add_operator as add

    async def work(settings: Settings) -> str:
        return add(settings, name)

    password = commands.run(work)
    typer.echo(f"operator {name}: password {password}")
    typer.echo("it is shown only now; it is stored only as a hash", err=True)
