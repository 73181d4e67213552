"""The ops console: lag, dead letters, replays and permits side by side, in a browser
(`hub console`)."""

from hub.ops.console.cli import console_app

__all__ = ["console_app"]
