"""Onboarding: council, consent, welcome."""
