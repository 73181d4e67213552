"""The port check done before the local stack starts a server."""

from __future__ import annotations

import errno
import socket

__all__ = ["PortInUse", "ensure_port_free"]


class PortInUse(Exception):
    """A port a local server needs is taken by another program; the message names the setting."""

    def __init__(self, port: int, what: str, setting: str) -> None:
        self.port = port
        self.what = what
        self.setting = setting
        super().__init__(
            f"Port {port} for the {what} is already in use by another program; "
            f"set {setting} to a free port."
        )


def ensure_port_free(port: int, what: str, setting: str) -> None:
    """Raise PortInUse unless `port` can be bound on 127.0.0.1, where the servers listen."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections in TIME_WAIT from an earlier run must not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            # Other errors (a privileged port, say) are not about another program.
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(port, what, setting) from error
            raise
