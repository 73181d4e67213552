"""The Permit Hub benchmark: `python -m bench` (or `make bench`).

One run starts its own Kafka node and durable Postgres server on free ports in a temporary
directory, fills the permit topic with synthetic lifecycle events, measures a bare decode
consumer as the reference, rebuilds each agency view from offset 0 in a child process, and
measures live end-to-end latency from the authority's commit to the commit in all three
views. See BENCHMARKS.md for what each figure means.
"""
