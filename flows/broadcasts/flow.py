"""The button on a broadcast's progress report: stop sending."""

from __future__ import annotations

from flows.broadcasts import dashboard, data, service
from flows.broadcasts.buttons import StopButton
from flows.engine import Action, Context, Flow


async def stop_sending(ctx: Context, button: StopButton) -> None:
    """Interrupt the broadcast, if this person may."""
    assert ctx.person is not None
    outcome = await service.interrupt(
        ctx.session, button.broadcast_id, ctx.person, await ctx.roles(), ctx.is_admin
    )
    if outcome is service.Interrupted.NOT_ALLOWED:
        ctx.toast = ctx._("Sorry, this button does not work.")
    elif outcome is service.Interrupted.ALREADY_OVER:
        ctx.toast = ctx._("This broadcast is already over.")
    else:
        ctx.toast = ctx._("Stopped: nothing more will be sent.")


FLOW = Flow(
    name="broadcasts",
    personal_data=[data.STARTED],
    dashboard=[dashboard.BROADCASTS],
    actions=[Action(StopButton, stop_sending)],
)
