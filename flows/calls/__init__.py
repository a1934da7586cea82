"""Calls for talents: a project asks the directory for a helping hand."""
