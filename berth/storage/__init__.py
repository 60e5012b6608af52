"""Persistence: one SQLAlchemy Core implementation over SQLite and PostgreSQL."""
