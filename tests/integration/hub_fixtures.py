"""Fixtures that give each test its own topics, consumer groups and agency databases
on the session's Kafka and Postgres, so tests cannot see each other's data."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hub.bootstrap import init_all
from hub.settings import Settings

__all__ = ["eventually", "hub_settings"]


@pytest.fixture
async def hub_settings(stack_settings: Settings) -> AsyncIterator[Settings]:
    """Settings with a fresh prefix: new topics, groups and databases for this test."""
    tag = secrets.token_hex(3)
    settings = stack_settings.model_copy(update={
        "topic_prefix": f"{stack_settings.topic_prefix}{tag}.",
        "database_prefix": f"{stack_settings.database_prefix}{tag}_",
        "batch_timeout_ms": 50,
    })
    await init_all(settings)
    yield settings


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 60.0, what: str = "condition"
) -> None:
    """Wait until `check()` is true, failing the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)
