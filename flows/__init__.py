"""Conversations and domain rules, channel-neutral: never imports a channel library."""
