"""Publishing agency systems: each with its own store, outbox and relay."""
