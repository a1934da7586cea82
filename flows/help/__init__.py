"""Help: what each person can do, by role."""
