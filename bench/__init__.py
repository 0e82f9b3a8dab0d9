"""Benchmarks: each module has `run(console) -> dict`, called by `kameng bench NAME`."""
