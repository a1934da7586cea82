"""Meeting invitations: RSVP, waiting list, calendar files and reminders."""
