"""The digest's flow: no conversation, one scheduled job."""

from __future__ import annotations

from datetime import timedelta

from flows.digest import service
from flows.engine import Flow, Job

DIGESTS = Job(service.DIGESTS_JOB, timedelta(minutes=5), service.send_due)

FLOW = Flow(name="digest", jobs=[DIGESTS])
