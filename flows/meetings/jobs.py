"""Scheduled work for meetings: reminders and RSVP-deadline summaries, claimed when due."""

from __future__ import annotations

from datetime import timedelta

from flows.engine import Job
from flows.meetings.service import REMINDERS_JOB, send_due

MEETING_REMINDERS = Job(REMINDERS_JOB, timedelta(seconds=30), send_due)
