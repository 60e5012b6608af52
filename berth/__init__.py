"""Berth: a self-hosted, durable Agent Server for LangGraph agents."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
