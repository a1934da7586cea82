"""The coordinators' dashboard: /dashboard sends a one-time sign-in link."""
