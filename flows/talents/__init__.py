"""Talent directory: residents say what they can lend; coordinators find them."""
