"""What the tests and the benchmarks share to run paysys on a development machine:
starting and stopping processes, reading the process table, creating and dropping
databases. Not part of the product: nothing under api, shared, worker, paysys or migrations
imports it, and it is not installed with paysys."""
