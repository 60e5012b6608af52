"""Executing runs: the worker pool that claims them and the executor that runs them."""
