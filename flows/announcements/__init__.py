"""Announcements: a coordinator sends one message to the council's residents."""
