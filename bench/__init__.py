"""The Permit Hub benchmark: `python -m bench` (or `make bench`).

One run starts its own Kafka node and durable Postgres server on free ports in a temporary
directory, fills each agency's permit audience topic with synthetic lifecycle events (as
the authority's relay publishes them: once per agency, cut down to what it reads),
measures the ceilings on the card's topic (kcat, a bare aiokafka fetch, a bare decode
consumer) and a FastStream peer, rebuilds each agency view from offset 0 in a child
process (and the card's at growing N), and measures live end-to-end latency from the
authority's commit to the commit in all three views at several rates. It writes JSON and
PNG charts. See BENCHMARKS.md for what each figure means.
"""
