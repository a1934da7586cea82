"""Verified members: invitation codes on paper, redeemed in chat, so one person counts once."""
