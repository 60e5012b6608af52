"""The small hooks in which SQLite and PostgreSQL differ."""
