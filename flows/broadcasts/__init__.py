"""Broadcasts: one message to many, through the outbox, with progress for the coordinator."""
