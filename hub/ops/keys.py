"""`hub keys list | rotate SIGNER | revoke KID`: the signing keys of every signer.

The signers are the agencies (what their outboxes publish), their front doors (requests),
their desks (officers' decisions) and the token signers agencies declare (e.g. the permit QR
codes' signer), each key with its purpose: `events` keys sign records, a token signer's
sign only its tokens.
A rotation publishes a new active key and retires the old one (records it signed still
verify); a revocation makes a key verify nothing from then on (a stolen key), so records
it signed are dead-lettered as `unauthenticated` wherever they are read again (and a QR
token under a revoked key is refused by public security). Running consumers see the change
within `hub.signing.CHECK_EVERY_S`; token verifiers at their next check.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from hub.bootstrap import key_store
from hub.commands import emit_json, run
from hub.errors import BadTarget
from hub.registry import installed
from hub.settings import Settings

keys_app = typer.Typer(help="Signing keys (events, QR tokens): list, rotate, revoke.",
                       no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


def _signers() -> list[str]:
    return sorted(installed().key_purposes())


@keys_app.command("list")
def list_keys(as_json: AsJson = False) -> None:
    """Every published key: its signer, what it signs, id, status and when it was made."""

    async def work(s: Settings) -> list[dict[str, str]]:
        return [{"signer": k.signer, "purpose": k.purpose, "kid": k.kid, "status": k.status,
                 "created": k.created} for k in key_store(s).published()]

    rows = run(work)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['signer']:<32} {r['purpose']:<10} {r['kid']:<18} {r['status']:<8} "
                   f"{r['created']}")


@keys_app.command("rotate")
def rotate(
    signer: Annotated[str, typer.Argument(
        help="an agency, AGENCY-front-door, or a token signer (`hub keys list`)",
        autocompletion=_signers)],
) -> None:
    """Publish a new active key for a signer; its previous key is retired (what it signed
    still verifies)."""

    async def work(s: Settings) -> str:
        purposes = installed().key_purposes()
        if signer not in purposes:
            raise BadTarget(f"no signer {signer!r}; known: {', '.join(_signers())}")
        return key_store(s).rotate(signer, purposes[signer]).kid

    emit_json({"signer": signer, "active": run(work)})


@keys_app.command("revoke")
def revoke(kid: Annotated[str, typer.Argument(help="the key id (`hub keys list`)")]) -> None:
    """Revoke a key: nothing it signed verifies any more, and its private key is deleted."""

    async def work(s: Settings) -> str:
        try:
            return key_store(s).revoke(kid, by=getpass.getuser())
        except LookupError as exc:
            raise BadTarget(str(exc)) from None

    emit_json({"revoked": kid, "signer": run(work)})
