"""`hub console`: the ops console, an aiohttp server on loopback by default.

Pages: the overview (lag per group, dead letters per group, replays), a group's dead
letters, one dead letter, one permit side by side. Reading needs no login; what shows a
person's data asks for a purpose and records the look first (`hub.looks`), masked unless
a logged-in operator asks to reveal; a redrive needs a logged-in operator, a purpose and
the session's CSRF token. Every page is rendered by Jinja2 with autoescape, served with a
Content-Security-Policy that allows no script, and never cached; an error page names the
kind of error, never a value.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from hub.errors import BadTarget, NotReady
from hub.logging import get_logger
from hub.looks import Look
from hub.ops.console import data
from hub.ops.console.auth import Session, Sessions, Throttle, operators, verify_password
from hub.redaction import describe_error
from hub.settings import Settings

__all__ = ["build_app", "serving"]

log = get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
SESSIONS = web.AppKey("sessions", Sessions)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
SESSION = web.RequestKey("session", Session)
THROTTLE = web.AppKey("throttle", Throttle)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADERS = {
    # No script at all: the pages are forms and tables.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
                               " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Pages may hold personal data: no copy in any cache.
    "Cache-Control": "no-store",
}


def build_app(settings: Settings, sessions: Sessions | None = None) -> web.Application:
    """The console's application for these settings (its session secret from the hub's
    secrets unless given)."""
    app = web.Application(middlewares=[_guard])
    app[SETTINGS] = settings
    app[SESSIONS] = sessions or Sessions.of(settings)
    app[THROTTLE] = Throttle()
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.PackageLoader("hub.ops.console", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined)
    app.add_routes([
        web.get("/", _overview), web.get("/style.css", _style),
        web.get("/permit", _permit_lookup), web.get("/permit/{no}", _permit_ask),
        web.post("/permit/{no}", _permit_show),
        web.get("/dlq/{group}", _dlq_list), web.get("/dlq/{group}/{ref}", _dlq_ask),
        web.post("/dlq/{group}/{ref}", _dlq_show),
        web.post("/dlq/{group}/{ref}/redrive", _dlq_redrive),
        web.get("/login", _login_form), web.post("/login", _login), web.post("/logout", _logout),
    ])
    return app


@contextlib.asynccontextmanager
async def serving(settings: Settings, address: str = "127.0.0.1", port: int = 0,
                  sessions: Sessions | None = None) -> AsyncIterator[str]:
    """The console served on `address:port` (0: a free port) until exit; yields its URL."""
    runner = web.AppRunner(build_app(settings, sessions), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address, port)
    await site.start()
    try:
        bound = runner.addresses[0][1]
        host = f"[{address}]" if ":" in address else address
        url = f"http://{host}:{bound}/"
        log.info("console listening", url=url)
        yield url
    finally:
        await runner.cleanup()


# --- sessions, headers and errors ---------------------------------------------------------

@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    found = sessions.load(request.cookies.get(Sessions.COOKIE))
    request[SESSION] = found or sessions.new()
    started = time.monotonic()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _finish(request, exc, found, started)
        raise
    except BadTarget as exc:
        response = _page(request, "message.html", status=404, title="Not found",
                         message=str(exc))
    except NotReady as exc:
        response = _page(request, "message.html", status=503, title="Not ready",
                         message=str(exc))
    except Exception as exc:
        # Rendered by hub.logging: each message described, a traceback without locals.
        log.exception("console page failed", route=_route(request), error=describe_error(exc),
                  error_class=type(exc).__name__)
        response = _page(request, "message.html", status=500, title="Error",
                         message=f"the page failed ({type(exc).__name__}); see the log")
    _finish(request, response, found, started)
    return response


def _finish(request: web.Request, response: web.StreamResponse, found: Session | None,
            started: float) -> None:
    """The security headers, and the session's cookie when it is new."""
    response.headers.update(HEADERS)
    session = request[SESSION]
    if session is not found:
        response.set_cookie(Sessions.COOKIE, request.app[SESSIONS].dump(session),
                            httponly=True, samesite="Strict", path="/", max_age=8 * 3600)
    log.debug("console page", route=_route(request), status=response.status,
              seconds=round(time.monotonic() - started, 3))


def _route(request: web.Request) -> str:
    """The page's route (`/permit/{no}`), never its path: a path is typed by a person and
    may hold anything, a name included."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "-"


def _page(request: web.Request, template: str, *, status: int = 200,
          **context: Any) -> web.Response:
    session: Session = request[SESSION]
    html = request.app[TEMPLATES].get_template(template).render(
        operator=session.operator, csrf=session.csrf, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


async def _form(request: web.Request, *, login: bool = False) -> dict[str, str]:
    """The posted form, refused (403) without the session's CSRF token, or without an
    operator logged in when `login`."""
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    session: Session = request[SESSION]
    if not session.csrf_ok(form.get("csrf")):
        raise _refused(request, "the form's CSRF token is missing or wrong; reload the page")
    if login and session.operator is None:
        raise _refused(request, "log in as an operator to change anything")
    return form


def _refused(request: web.Request, why: str) -> web.HTTPForbidden:
    html = request.app[TEMPLATES].get_template("message.html").render(
        operator=None, csrf="", title="Refused", message=why)
    return web.HTTPForbidden(text=html, content_type="text/html")


def _look(request: web.Request, command: str, form: dict[str, str]) -> Look:
    """The look a form asks for: its purpose (BadTarget when it says nothing), revealing
    only for a logged-in operator."""
    session: Session = request[SESSION]
    reveal = form.get("reveal") == "on" and session.operator is not None
    return Look(f"console {command}", form.get("purpose", ""), reveal, session.operator)


# --- pages --------------------------------------------------------------------------------

async def _style(request: web.Request) -> web.Response:
    return web.Response(text=STYLE, content_type="text/css")


async def _overview(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return _page(request, "overview.html", title="Overview",
                 groups=await data.overview(settings), replays=await data.replays(settings))


async def _permit_lookup(request: web.Request) -> web.StreamResponse:
    no = request.query.get("no", "").strip()
    raise web.HTTPSeeOther(f"/permit/{_quoted(no)}")


def _quoted(text: str) -> str:
    return quote(text, safe="")


async def _permit_ask(request: web.Request) -> web.Response:
    no = request.match_info["no"]
    return _page(request, "ask.html", title=f"Permit {no}", subject=f"permit {no}",
                 action=f"/permit/{_quoted(no)}", error=None)


async def _permit_show(request: web.Request) -> web.Response:
    no = request.match_info["no"]
    form = await _form(request)
    try:
        look = _look(request, "permit", form)
    except BadTarget as exc:
        return _page(request, "ask.html", status=400, title=f"Permit {no}",
                     subject=f"permit {no}", action=f"/permit/{_quoted(no)}", error=str(exc))
    columns = await data.side_by_side(request.app[SETTINGS], no, look)
    rows = list(dict.fromkeys(k for c in columns for k in (c.compared or {})))
    return _page(request, "permit.html", title=f"Permit {no}", permit_no=no, look=look,
                 columns=columns, rows=rows)


async def _dlq_list(request: web.Request) -> web.Response:
    group = request.match_info["group"]
    agency, listed = await data.dead_letters(request.app[SETTINGS], group)
    return _page(request, "dlq.html", title=f"Dead letters of {agency}", group=group,
                 agency=agency, listed=listed, reasons=data.reasons(listed))


async def _dlq_ask(request: web.Request) -> web.Response:
    group, ref = request.match_info["group"], request.match_info["ref"]
    return _page(request, "ask.html", title=f"Dead letter {ref} of {group}",
                 subject=f"dead letter {ref} of {group}",
                 action=f"/dlq/{_quoted(group)}/{_quoted(ref)}", error=None)


async def _dlq_show(request: web.Request) -> web.Response:
    group, ref = request.match_info["group"], request.match_info["ref"]
    form = await _form(request)
    try:
        look = _look(request, "dlq show", form)
    except BadTarget as exc:
        return _page(request, "ask.html", status=400, title=f"Dead letter {ref} of {group}",
                     subject=f"dead letter {ref} of {group}",
                     action=f"/dlq/{_quoted(group)}/{_quoted(ref)}", error=str(exc))
    detail = await data.dead_letter(request.app[SETTINGS], group, ref, look)
    return _page(request, "dead_letter.html", title=f"Dead letter {ref} of {group}",
                 group=group, ref=ref, detail=detail, look=look, done=None)


async def _dlq_redrive(request: web.Request) -> web.Response:
    group, ref = request.match_info["group"], request.match_info["ref"]
    form = await _form(request, login=True)
    look = _look(request, "dlq redrive", form)
    done = await data.redrive_one(request.app[SETTINGS], group, ref, look,
                                  again=form.get("again") == "on")
    log.info("console redrive", group=group, ref=ref, result=done.result,
             operator=look.operator)
    return _page(request, "redriven.html", title=f"Redrive of {ref}", group=group, ref=ref,
                 done=done, look=look)


async def _login_form(request: web.Request) -> web.Response:
    return _page(request, "login.html", title="Log in", error=None)


async def _login(request: web.Request) -> web.Response:
    form = await _form(request)
    name, password = form.get("operator", ""), form.get("password", "")
    stored = operators(request.app[SETTINGS]).get(name)
    throttle = request.app[THROTTLE]
    if stored is not None and throttle.blocked(name):
        log.warning("console login throttled", operator=name, remote=request.remote)
        return _page(request, "login.html", status=429, title="Log in",
                     error="too many failed logins for this operator; try again later")
    if stored is None or not verify_password(password, stored):
        if stored is not None:
            throttle.failed(name)
        # Never the password; the name only when it is an operator's (a mistyped password
        # pasted into the name field stays out of the log).
        log.warning("console login refused", operator=name if stored else None,
                    known_operator=stored is not None, remote=request.remote)
        return _page(request, "login.html", status=401, title="Log in",
                     error="unknown operator or wrong password")
    throttle.succeeded(name)
    log.info("console login", operator=name, remote=request.remote)
    request[SESSION] = request.app[SESSIONS].new(name)
    raise web.HTTPSeeOther("/")


async def _logout(request: web.Request) -> web.Response:
    await _form(request)
    request[SESSION] = request.app[SESSIONS].new()
    raise web.HTTPSeeOther("/")


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1f24; }
header { background: #0b3d5c; color: #fff; padding: .6em 1.2em; display: flex; gap: 1.5em;
         align-items: center; }
header a { color: #fff; } header form { margin-left: auto; }
main { padding: 1em 1.2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #c8d1da; padding: .3em .6em; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #eef2f6; }
td.differs { background: #ffe1e1; font-weight: 600; }
td.differs::after { content: " \\2260"; color: #b00020; }
td.notheld { color: #777; font-style: italic; }
.look { background: #fff8dc; border: 1px solid #e0c96b; padding: .4em .8em; }
.error { color: #b00020; }
.ok { color: #146c2e; }
pre { background: #f6f8fa; padding: .6em; overflow: auto; }
"""
