"""Persistence: SQLAlchemy models, queries, migrations. Formats nothing for people."""
