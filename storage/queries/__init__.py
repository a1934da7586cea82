"""Named queries, grouped by capability."""
