"""Linking: one person, several channels (/link)."""
