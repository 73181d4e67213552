"""What every hub service shares: settings, logging, the consumer runtime, the outbox
relay, the local stack and the operators' CLI."""

__all__: list[str] = []
