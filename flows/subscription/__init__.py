"""Subscription: /stop ends broadcasts to a person until /start; blocked bots are noticed."""
