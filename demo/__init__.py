"""The demo: the seed's story played on the local stack (`make demo`), and synthetic permits
for tests and benchmarks. Not part of the hub's runtime."""
