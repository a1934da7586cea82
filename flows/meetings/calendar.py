"""The calendar file that goes with every invitation, change and cancellation.

One VEVENT per file, in the council's time zone (with its VTIMEZONE), so a phone's
calendar shows the right hour wherever it is set. SEQUENCE follows the meeting's changes;
a cancellation is METHOD:CANCEL with the same UID, so the calendar removes the event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar

from flows.engine import Attachment
from storage.models import Meeting, MeetingStatus, utcnow

PRODUCT_ID = "-//Coup de pouce//Meetings//EN"
MIME_TYPE = "text/calendar"


def calendar(meeting: Meeting, timezone: str, now: datetime | None = None) -> bytes:
    """The meeting as an iCalendar file."""
    zone = ZoneInfo(timezone)
    cancelled = meeting.status == MeetingStatus.CANCELLED
    cal = icalendar.Calendar()
    cal.add("prodid", PRODUCT_ID)
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = icalendar.Event()
    event.add("uid", meeting.uid)
    event.add("dtstamp", now or utcnow())
    event.add("sequence", meeting.sequence)
    event.add("summary", meeting.title)
    event.add("dtstart", meeting.starts_at.astimezone(zone))
    event.add("dtend", meeting.ends_at.astimezone(zone))
    event.add("location", meeting.place)
    if meeting.description:
        event.add("description", meeting.description)
    if meeting.latitude is not None and meeting.longitude is not None:
        event.add("geo", (meeting.latitude, meeting.longitude))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    cal.add_component(event)
    # The zone's rules around the meeting only: a few lines rather than sixty years of them.
    cal.add_missing_timezones(
        first_date=(meeting.starts_at - timedelta(days=366)).date(),
        last_date=(meeting.ends_at + timedelta(days=366)).date(),
    )
    return cal.to_ical()


def attachment(meeting: Meeting, timezone: str) -> Attachment:
    return Attachment(
        filename=f"meeting-{meeting.id}.ics",
        content=calendar(meeting, timezone),
        mime_type=MIME_TYPE,
    )
