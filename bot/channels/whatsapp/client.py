"""A thin client of Meta's WhatsApp Cloud API (Graph API), on aiohttp.

Why not pywa, the maintained, typed library made for this: its client sets its HTTP base URL
to graph.facebook.com itself (`GraphAPI.__init__` overwrites the session's `base_url`), so
WHATSAPP_API_URL (a self-hosted gateway, or the emulator in tests) could only be honoured by
rewriting a private attribute, which the next release may rename; and it runs on httpx, which
costs this bot about five times aiohttp's CPU per request (see bot/channels/http.py). We use
three endpoints (messages, media, message_templates): they fit in this file.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=15)


class GraphError(Exception):
    """The Graph API refused a request; `code` is Meta's error code (131047, 130429…)."""

    def __init__(self, status: int, code: int, message: str, details: str = "") -> None:
        super().__init__(f"({code}) {message}" + (f": {details}" if details else ""))
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class NetworkError(Exception):
    """The Graph API could not be reached, or answered something that is not its JSON."""


class CloudApi:
    """Sends messages and files from one WhatsApp Business phone number."""

    def __init__(
        self, api_url: str, phone_number_id: str, token: str, *, connections: int = 64
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.phone_number_id = phone_number_id
        self._token = token
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=TIMEOUT,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, to: str, message: dict[str, Any]) -> str:
        """Send one message (`type` and its object); return its id (wamid…)."""
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        answer = await self._request(
            "POST", f"{self.phone_number_id}/messages", json={**body, **message}
        )
        try:
            return str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise NetworkError(f"no message id in the answer: {str(answer)[:200]}") from None

    async def upload(self, filename: str, content: bytes, mime_type: str) -> str:
        """Upload a file for later messages; return its media id."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", content, filename=filename, content_type=mime_type)
        answer = await self._request("POST", f"{self.phone_number_id}/media", data=form)
        return str(answer["id"])

    async def display_number(self) -> str:
        """The phone number people write to, digits only."""
        answer = await self._request(
            "GET", self.phone_number_id, params={"fields": "display_phone_number"}
        )
        return "".join(c for c in str(answer.get("display_phone_number", "")) if c.isdigit())

    async def submit_template(self, account_id: str, template: dict[str, Any]) -> dict[str, Any]:
        """Submit a template for approval; Meta's answer (id, status, category)."""
        return await self._request("POST", f"{account_id}/message_templates", json=template)

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            raise RuntimeError("the WhatsApp client is not started")
        try:
            async with self._session.request(
                method, f"{self.api_url}/{path}", **kwargs
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise NetworkError(f"{type(error).__name__}: {error}") from error
        try:
            answer = json.loads(raw)
        except ValueError:
            raise NetworkError(f"HTTP {status}, not JSON: {raw[:200]!r}") from None
        if not isinstance(answer, dict):
            raise NetworkError(f"HTTP {status}, unexpected answer: {str(answer)[:200]}")
        refusal = answer.get("error")
        if status >= 400 or isinstance(refusal, dict):
            refusal = refusal if isinstance(refusal, dict) else {}
            data = refusal.get("error_data")
            details = str(data.get("details", "")) if isinstance(data, dict) else ""
            raise GraphError(
                status,
                int(refusal.get("code", status) or status),
                str(refusal.get("message", f"HTTP {status}")),
                details,
            )
        return answer
