"""Helpers of `benchmarks/bench_fanout.py`: peer servers, the load generator, the agent.

Every process of the benchmark imports from here, so the workload (event size, the
payload's shape, the credit datagrams that pace in-process publishers) is defined once.
"""
