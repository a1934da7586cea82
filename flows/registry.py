"""The capabilities, in one explicit list. Adding one touches its package and this list."""

from __future__ import annotations

from flows.announcements.flow import FLOW as ANNOUNCEMENTS
from flows.broadcasts.flow import FLOW as BROADCASTS
from flows.calls.flow import FLOW as CALLS
from flows.calls.follow import FLOW as FOLLOW
from flows.consultations.flow import FLOW as CONSULTATIONS
from flows.dashboard.flow import FLOW as DASHBOARD
from flows.engine import Flow
from flows.help.flow import FLOW as HELP
from flows.language.flow import FLOW as LANGUAGE
from flows.linking.flow import FLOW as LINKING
from flows.meetings.flow import FLOW as MEETINGS
from flows.onboarding.flow import FLOW as ONBOARDING
from flows.privacy.flow import FLOW as PRIVACY
from flows.subscription.flow import FLOW as SUBSCRIPTION
from flows.talents.flow import FLOW as TALENTS
from flows.talents.search import FLOW as SEARCH
from flows.verification.flow import FLOW as VERIFICATION

FLOWS: tuple[Flow, ...] = (
    ONBOARDING,
    LANGUAGE,
    HELP,
    PRIVACY,
    LINKING,
    VERIFICATION,
    SUBSCRIPTION,
    BROADCASTS,
    ANNOUNCEMENTS,
    TALENTS,
    SEARCH,
    CALLS,
    FOLLOW,
    MEETINGS,
    CONSULTATIONS,
    DASHBOARD,
)
