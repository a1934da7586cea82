"""Tests of the WhatsApp Cloud API emulator, driven with a plain aiohttp client and a small
webhook receiver that checks Meta's signature the way the bot must."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.whatsapp_emulator import CloudApiEmulator, SentMessage, encode_webhook

TOKEN = "test-token"
APP_SECRET = "test-app-secret"
PHONE_NUMBER_ID = "100200300"
WABA_ID = "900800700"
BUSINESS_NUMBER = "33757000000"
AMINA = "33612345678"
BILAL = "33698765432"
HOUR = 3600.0

JSONDict = dict[str, Any]


class Receiver:
    """Stands in for the bot's webhook: checks X-Hub-Signature-256, keeps what arrives."""

    def __init__(self, app_secret: str) -> None:
        self.app_secret = app_secret
        self.raw: list[bytes] = []
        self.bodies: list[JSONDict] = []
        self.refused = 0
        self.answer = 200
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/whatsapp", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/whatsapp"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(self.app_secret.encode(), raw, hashlib.sha256).hexdigest()
        signature = request.headers.get("X-Hub-Signature-256", "")
        if not hmac.compare_digest(signature, expected):
            self.refused += 1
            return web.Response(status=403)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.Response(status=400)
        self.raw.append(raw)
        self.bodies.append(body)
        return web.Response(status=self.answer)

    def values(self) -> list[JSONDict]:
        return [
            change["value"]
            for body in self.bodies
            for entry in body["entry"]
            for change in entry["changes"]
        ]

    def statuses(self, wamid: str | None = None) -> list[JSONDict]:
        found = [status for value in self.values() for status in value.get("statuses", [])]
        return [status for status in found if wamid is None or status["id"] == wamid]

    def messages(self) -> list[JSONDict]:
        return [message for value in self.values() for message in value.get("messages", [])]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(APP_SECRET)
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def cloud(receiver: Receiver) -> AsyncIterator[CloudApiEmulator]:
    async with CloudApiEmulator(
        phone_number_id=PHONE_NUMBER_ID,
        waba_id=WABA_ID,
        token=TOKEN,
        app_secret=APP_SECRET,
        display_phone_number=BUSINESS_NUMBER,
    ) as emulator:
        emulator.webhook_url = receiver.url
        yield emulator


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session


async def send(
    client: aiohttp.ClientSession, cloud: CloudApiEmulator, payload: Any
) -> tuple[int, JSONDict]:
    async with client.post(cloud.messages_url, json=payload) as response:
        return response.status, await response.json()


def text(to: str, body: str) -> JSONDict:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


def buttons(to: str, body: str, *titles: str, ids: list[str] | None = None) -> JSONDict:
    ids = ids or [f"choice-{index}" for index in range(len(titles))]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": reply_id, "title": title}}
                    for reply_id, title in zip(ids, titles, strict=True)
                ]
            },
        },
    }


def list_message(to: str, body: str, *sections: list[tuple[str, str]]) -> JSONDict:
    """A list message; each section is [(row id, row title)], titled "Section n"."""
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {
                "button": "Choisir",
                "sections": [
                    {
                        "title": f"Section {number}",
                        "rows": [{"id": row_id, "title": title} for row_id, title in rows],
                    }
                    for number, rows in enumerate(sections, start=1)
                ],
            },
        },
    }


def template(
    to: str, name: str, *params: str, language: str = "fr", payloads: tuple[str, ...] = ()
) -> JSONDict:
    components: list[JSONDict] = [
        {"type": "body", "parameters": [{"type": "text", "text": value} for value in params]}
    ]
    components += [
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": str(index),
            "parameters": [{"type": "payload", "payload": payload}],
        }
        for index, payload in enumerate(payloads)
    ]
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {"name": name, "language": {"code": language}, "components": components},
    }


def open_window(cloud: CloudApiEmulator, *numbers: str) -> None:
    for number in numbers:
        cloud.user(number).last_inbound_at = time.time()


def details(answer: JSONDict) -> str:
    return str(answer["error"].get("error_data", {}).get("details", ""))


async def statuses_of(
    cloud: CloudApiEmulator, receiver: Receiver, wamid: str, count: int
) -> list[JSONDict]:
    await cloud.wait_until(lambda: len(receiver.statuses(wamid)) >= count)
    return receiver.statuses(wamid)


# ---------------------------------------------------------------------- Graph plumbing


async def test_the_url_carries_a_graph_version(cloud: CloudApiEmulator) -> None:
    assert cloud.url.startswith("http://127.0.0.1:")
    assert cloud.url.endswith("/v26.0")
    assert cloud.messages_url == f"{cloud.url}/{PHONE_NUMBER_ID}/messages"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong token", "not bearer"],
)
async def test_every_request_needs_the_bearer_token(
    cloud: CloudApiEmulator, headers: dict[str, str]
) -> None:
    async with (
        aiohttp.ClientSession(headers=headers) as anonymous,
        anonymous.post(cloud.messages_url, json=text(AMINA, "Bonjour")) as response,
    ):
        assert response.status == 401
        error = (await response.json())["error"]
    assert error["code"] == 190
    assert error["type"] == "OAuthException"
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"
    assert error["fbtrace_id"]
    assert cloud.sent == []


async def test_any_graph_version_is_served(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    open_window(cloud, AMINA)
    base = cloud.url.rsplit("/", 1)[0]
    async with client.post(
        f"{base}/v19.0/{PHONE_NUMBER_ID}/messages", json=text(AMINA, "Bonjour")
    ) as response:
        assert response.status == 200


async def test_unknown_paths_and_objects_are_refused_like_graph(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    base = cloud.url.rsplit("/", 1)[0]
    async with client.get(f"{base}/v26.0/{PHONE_NUMBER_ID}/whatever") as response:
        assert response.status == 404
        assert (await response.json())["error"]["message"] == "Unknown path components: /whatever"
    async with client.get(f"{base}/nothing") as response:
        assert response.status == 404
    async with client.post(f"{cloud.url}/999/messages", json=text(AMINA, "Hi")) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert (error["code"], error["error_subcode"], error["type"]) == (
        100,
        33,
        "GraphMethodException",
    )
    assert error["message"].startswith("Unsupported post request. Object with ID '999'")
    async with client.get(cloud.messages_url) as response:
        assert response.status == 400
        assert (await response.json())["error"]["message"].startswith("Unsupported get request")
    assert cloud.sent == []


# ---------------------------------------------------------------------- sending


async def test_a_text_in_the_window_is_accepted_then_reported_sent_and_delivered(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    open_window(cloud, AMINA)
    status, answer = await send(client, cloud, text("+33 6 12 34 56 78", "Bonjour Amina"))

    assert status == 200
    assert answer["messaging_product"] == "whatsapp"
    assert answer["contacts"] == [{"input": "+33 6 12 34 56 78", "wa_id": AMINA}]
    wamid = answer["messages"][0]["id"]
    assert wamid.startswith("wamid.") and "message_status" not in answer["messages"][0]
    assert AMINA.encode() in base64.b64decode(wamid.removeprefix("wamid."))

    (record,) = cloud.sent
    assert (record.to, record.wa_id, record.type, record.text) == (
        "+33 6 12 34 56 78",
        AMINA,
        "text",
        "Bonjour Amina",
    )
    assert record.accepted and record.delivered and record.wamid == wamid
    assert cloud.messages_to(AMINA) == [record]

    sent, delivered = await statuses_of(cloud, receiver, wamid, 2)
    assert (sent["status"], delivered["status"]) == ("sent", "delivered")
    assert sent["recipient_id"] == AMINA and sent["timestamp"].isdigit()
    assert sent["pricing"] == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }
    assert "conversation" not in sent and "errors" not in sent
    body = receiver.bodies[0]
    assert body["object"] == "whatsapp_business_account"
    assert body["entry"][0]["id"] == WABA_ID
    change = body["entry"][0]["changes"][0]
    assert change["field"] == "messages"
    assert change["value"]["metadata"] == {
        "display_phone_number": BUSINESS_NUMBER,
        "phone_number_id": PHONE_NUMBER_ID,
    }
    await cloud.flush()
    assert record.statuses == ["sent", "delivered"]
    assert [post.kind for post in cloud.webhook_posts] == ["status", "status"]
    assert all(post.status == 200 for post in cloud.webhook_posts)


async def test_each_message_gets_its_own_wamid(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    open_window(cloud, AMINA)
    answers = await asyncio.gather(*(send(client, cloud, text(AMINA, "x")) for _ in range(20)))
    wamids = {answer["messages"][0]["id"] for _, answer in answers}
    assert len(wamids) == 20


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (
            {"to": AMINA, "type": "text", "text": {"body": "Hi"}},
            100,
            "(#100) The parameter messaging_product is required.",
        ),
        (
            {**text(AMINA, "Hi"), "messaging_product": "sms"},
            100,
            '(#100) Param messaging_product must be one of {WHATSAPP} - got "sms".',
        ),
        (
            {"messaging_product": "whatsapp", "type": "text", "text": {"body": "Hi"}},
            100,
            "(#100) The parameter to is required.",
        ),
        ({**text(AMINA, "Hi"), "type": "pigeon"}, 100, "(#100) Param type must be one of {AUDIO"),
        (text(AMINA, ""), 100, "(#100) The parameter text['body'] is required."),
        (
            text(AMINA, "x" * 4097),
            100,
            "(#100) Param text['body'] must be at most 4096 characters long.",
        ),
        ({**text(AMINA, "Hi"), "type": "audio"}, 131009, "(#131009) Parameter value is not valid"),
        (["not", "an", "object"], 100, "(#100) The parameter messaging_product is required."),
    ],
    ids=[
        "no product",
        "wrong product",
        "no recipient",
        "unknown type",
        "empty text",
        "text too long",
        "type not emulated",
        "not an object",
    ],
)
async def test_invalid_sends_are_refused_with_graph_wording(
    cloud: CloudApiEmulator,
    client: aiohttp.ClientSession,
    payload: Any,
    code: int,
    message: str,
) -> None:
    open_window(cloud, AMINA)
    status, answer = await send(client, cloud, payload)
    assert status == 400
    assert answer["error"]["code"] == code
    assert answer["error"]["message"].startswith(message)
    (record,) = cloud.sent
    assert not record.accepted and record.wamid is None and record.error_code == code
    assert cloud.messages_to(AMINA) == []


async def test_the_longest_text_is_accepted(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    open_window(cloud, AMINA)
    status, _ = await send(client, cloud, text(AMINA, "é" * 4096))
    assert status == 200


def _with(payload: JSONDict, change: Any) -> JSONDict:
    change(payload["interactive"])
    return payload


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (buttons(AMINA, "?", "A", "B", "C", "D"), "Buttons count invalid"),
        (buttons(AMINA, "?"), "Buttons count invalid"),
        (
            buttons(AMINA, "?", "Un titre bien trop long"),
            "Button title length invalid. Min length: 1, Max length: 20",
        ),
        (buttons(AMINA, "?", ""), "Button title length invalid"),
        (buttons(AMINA, "?", "Oui", "Oui"), "Duplicate button title"),
        (buttons(AMINA, "?", "Oui", "Non", ids=["same", "same"]), "Duplicate button id"),
        (buttons(AMINA, "?", "Oui", ids=["i" * 257]), "Button id length invalid"),
        (buttons(AMINA, "x" * 1025, "Oui"), "Body text length invalid"),
        (buttons(AMINA, "", "Oui"), "Body text length invalid"),
        (
            _with(buttons(AMINA, "?", "Oui"), lambda i: i.update(footer={"text": "f" * 61})),
            "Footer text length invalid",
        ),
        (
            _with(
                buttons(AMINA, "?", "Oui"),
                lambda i: i["action"]["buttons"][0].update(type="url"),
            ),
            "Button type invalid",
        ),
    ],
    ids=[
        "4 buttons",
        "no button",
        "long title",
        "empty title",
        "same titles",
        "same ids",
        "long id",
        "long body",
        "empty body",
        "long footer",
        "not a reply button",
    ],
)
async def test_reply_button_limits(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, payload: JSONDict, expected: str
) -> None:
    open_window(cloud, AMINA)
    status, answer = await send(client, cloud, payload)
    assert status == 400
    assert answer["error"]["message"] == "(#131009) Parameter value is not valid"
    assert answer["error"]["type"] == "OAuthException"
    assert answer["error"]["error_data"]["messaging_product"] == "whatsapp"
    assert expected in details(answer)


async def test_reply_buttons_at_the_limits_are_accepted(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    open_window(cloud, AMINA)
    payload = buttons(AMINA, "b" * 1024, "t" * 20, "Non", "Peut-être", ids=["i" * 256, "n", "p"])
    payload["interactive"]["footer"] = {"text": "f" * 60}
    payload["interactive"]["header"] = {"type": "text", "text": "h" * 60}
    status, _ = await send(client, cloud, payload)
    assert status == 200
    (record,) = cloud.sent
    assert record.buttons == ["t" * 20, "Non", "Peut-être"]
    assert record.button_ids == ["i" * 256, "n", "p"]
    assert record.text == "b" * 1024


def _rows(count: int, prefix: str = "r") -> list[tuple[str, str]]:
    return [(f"{prefix}{index}", f"Choix {prefix}{index}") for index in range(count)]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            list_message(AMINA, "?", _rows(6, "a"), _rows(5, "b")),
            "Total row count exceed max allowed count: 10",
        ),
        (list_message(AMINA, "?", *[_rows(1, f"s{n}") for n in range(11)]), "section count"),
        (list_message(AMINA, "?", [("r", "t" * 25)]), "Row title length invalid"),
        (list_message(AMINA, "?", [("r" * 201, "t")]), "Row id length invalid"),
        (list_message(AMINA, "?", [("r", "A"), ("r", "B")]), "Duplicate row id"),
        (list_message(AMINA, "x" * 4097, [("r", "A")]), "Body text length invalid"),
        (
            _with(
                list_message(AMINA, "?", [("r", "A")]),
                lambda i: i["action"]["sections"][0]["rows"][0].update(description="d" * 73),
            ),
            "Row description length invalid",
        ),
        (
            _with(
                list_message(AMINA, "?", [("a", "A")], [("b", "B")]),
                lambda i: i["action"]["sections"][1].pop("title"),
            ),
            "Section title is required when there are multiple sections",
        ),
        (
            _with(
                list_message(AMINA, "?", [("a", "A")]),
                lambda i: i["action"]["sections"][0].update(title="s" * 25),
            ),
            "Section title length invalid",
        ),
        (
            _with(
                list_message(AMINA, "?", [("a", "A")]),
                lambda i: i["action"].update(button="b" * 21),
            ),
            "Button text length invalid",
        ),
        (
            _with(list_message(AMINA, "?", []), lambda i: None),
            "Each section must contain at least one row",
        ),
    ],
    ids=[
        "11 rows",
        "11 sections",
        "long row title",
        "long row id",
        "same row ids",
        "long body",
        "long description",
        "untitled section among several",
        "long section title",
        "long button",
        "empty section",
    ],
)
async def test_list_limits(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, payload: JSONDict, expected: str
) -> None:
    open_window(cloud, AMINA)
    status, answer = await send(client, cloud, payload)
    assert status == 400
    assert answer["error"]["code"] == 131009
    assert expected.lower() in details(answer).lower()


async def test_lists_at_the_limits_are_accepted(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    open_window(cloud, AMINA)
    payload = list_message(AMINA, "b" * 4096, _rows(4, "a"), _rows(6, "b"))
    first_row = payload["interactive"]["action"]["sections"][0]["rows"][0]
    first_row.update(id="i" * 200, title="t" * 24, description="d" * 72)
    status, _ = await send(client, cloud, payload)
    assert status == 200

    single = list_message(AMINA, "Quel créneau ?", [("mardi", "Mardi"), ("jeudi", "Jeudi")])
    single["interactive"]["action"]["sections"][0].pop("title")
    status, _ = await send(client, cloud, single)
    assert status == 200
    record = cloud.sent[-1]
    assert record.rows == ["Mardi", "Jeudi"] and record.row_ids == ["mardi", "jeudi"]
    assert record.text == "Quel créneau ?" and record.buttons == []


# ---------------------------------------------------------------------- the 24-hour window


async def test_free_form_outside_the_window_is_accepted_then_fails_by_webhook(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    status, answer = await send(client, cloud, text(AMINA, "Rappel : réunion jeudi"))
    assert status == 200
    wamid = answer["messages"][0]["id"]

    (failed,) = await statuses_of(cloud, receiver, wamid, 1)
    assert failed["status"] == "failed" and failed["recipient_id"] == AMINA
    assert failed["errors"] == [
        {
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {
                "details": "Message failed to send because more than 24 hours have passed "
                "since the customer last replied to this number."
            },
            "href": "/documentation/business-messaging/whatsapp/support/error-codes",
        }
    ]
    assert "pricing" not in failed
    (record,) = cloud.sent
    assert record.accepted and record.failed and record.error_code == 131047
    assert cloud.messages_to(AMINA) == [] and cloud.accepted() == [record]
    await cloud.flush()
    assert record.statuses == ["failed"]


@pytest.mark.parametrize(("hours_ago", "delivered"), [(25, False), (23.5, True)])
async def test_the_window_lasts_24_hours(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, hours_ago: float, delivered: bool
) -> None:
    amina = cloud.user(AMINA)
    amina.last_inbound_at = time.time() - hours_ago * HOUR
    assert cloud.window_open(AMINA) is delivered
    status, _ = await send(client, cloud, text(AMINA, "Bonjour"))
    assert status == 200
    assert cloud.sent[0].delivered is delivered
    assert (amina.inbox != []) is delivered


async def test_a_person_writing_opens_the_window(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    amina = cloud.user(AMINA)
    assert amina.last_inbound_at is None
    before = time.time()
    assert await amina.send("Bonjour") == 200
    assert amina.last_inbound_at is not None and amina.last_inbound_at >= before
    await send(client, cloud, text(AMINA, "Bienvenue !"))
    assert [message.text for message in amina.inbox] == ["Bienvenue !"]


# ---------------------------------------------------------------------- templates


async def test_templates_are_sent_whatever_the_window_and_rendered(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    cloud.add_template("invitation", "fr", "Bonjour {{1}}, réunion le {{2}} à {{1}}'s.")
    status, answer = await send(client, cloud, template(AMINA, "invitation", "Amina", "jeudi"))
    assert status == 200
    assert answer["messages"][0]["message_status"] == "accepted"
    (record,) = cloud.sent
    assert record.is_template and record.template == "invitation"
    assert record.text == record.rendered == "Bonjour Amina, réunion le jeudi à Amina's."
    assert record.delivered and cloud.messages_to(AMINA) == [record]

    sent, _ = await statuses_of(cloud, receiver, answer["messages"][0]["id"], 2)
    assert sent["pricing"] == {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "utility",
    }


@pytest.mark.parametrize(
    ("template_status", "code", "http_status", "message"),
    [
        (None, 132001, 404, "(#132001) Template name does not exist in the translation"),
        ("PENDING", 132001, 404, "(#132001) Template name does not exist in the translation"),
        ("REJECTED", 132001, 404, "(#132001) Template name does not exist in the translation"),
        ("PAUSED", 132015, 400, "(#132015) Template is Paused"),
        ("DISABLED", 132016, 400, "(#132016) Template is Disabled"),
    ],
)
async def test_templates_that_cannot_be_sent(
    cloud: CloudApiEmulator,
    client: aiohttp.ClientSession,
    template_status: str | None,
    code: int,
    http_status: int,
    message: str,
) -> None:
    if template_status is not None:
        cloud.add_template("rappel", "fr", "Rappel : {{1}}", template_status)
    status, answer = await send(client, cloud, template(AMINA, "rappel", "jeudi"))
    assert status == http_status
    assert (answer["error"]["code"], answer["error"]["message"]) == (code, message)
    if code == 132001:
        assert details(answer) == "template name (rappel) does not exist in fr"


async def test_a_template_in_another_language_does_not_exist(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    cloud.add_template("rappel", "fr", "Rappel : {{1}}")
    status, answer = await send(client, cloud, template(AMINA, "rappel", "x", language="en"))
    assert (status, answer["error"]["code"]) == (404, 132001)


async def test_template_parameters_are_checked(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    cloud.add_template("invitation", "fr", "Bonjour {{1}}, réunion le {{2}}.")
    status, answer = await send(client, cloud, template(AMINA, "invitation", "Amina"))
    assert (status, answer["error"]["code"]) == (400, 132000)
    assert answer["error"]["message"] == (
        "(#132000) Number of parameters does not match the expected number of params"
    )
    assert details(answer) == (
        "body: number of localizable_params (1) does not match the expected number of params (2)"
    )

    for bad in ("ligne 1\nligne 2", "tab\there", "cinq     espaces"):
        status, answer = await send(client, cloud, template(AMINA, "invitation", "Amina", bad))
        assert (status, answer["error"]["code"]) == (400, 132018), bad
        assert answer["error"]["message"] == (
            "(#132018) There's an issue with the parameters in your template"
        )
        assert details(answer) == (
            "Param text cannot have new-line/tab characters or more than 4 consecutive spaces"
        )

    status, _ = await send(client, cloud, template(AMINA, "invitation", "A", "quatre    espaces"))
    assert status == 200
    assert cloud.sent[-1].text == "Bonjour A, réunion le quatre    espaces."


async def test_templates_are_created_reviewed_and_listed(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    url = f"{cloud.url}/{WABA_ID}/message_templates"
    definition = {
        "name": "convocation",
        "language": "fr",
        "category": "UTILITY",
        "components": [
            {"type": "BODY", "text": "Conseil du {{1}}", "example": {"body_text": [["jeudi"]]}},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Je viens"}]},
        ],
    }
    async with client.post(url, json=definition) as response:
        assert response.status == 200
        created = await response.json()
    assert created["status"] == "PENDING" and created["category"] == "UTILITY"
    assert created["id"].isdigit()

    status, answer = await send(client, cloud, template(AMINA, "convocation", "jeudi"))
    assert (status, answer["error"]["code"]) == (404, 132001)

    async with client.get(url) as response:
        listed = await response.json()
    (entry,) = listed["data"]
    assert entry["name"] == "convocation" and entry["status"] == "PENDING"
    assert entry["language"] == "fr" and entry["id"] == created["id"]
    assert entry["components"] == definition["components"]
    assert "cursors" in listed["paging"]

    cloud.set_template_status("convocation", "fr", "APPROVED")
    status, _ = await send(client, cloud, template(AMINA, "convocation", "jeudi"))
    assert status == 200
    assert cloud.templates[("convocation", "fr")].buttons == ["Je viens"]

    async with client.post(url, json=definition) as response:
        assert response.status == 400
        assert (await response.json())["error"]["error_subcode"] == 2388024
    async with client.post(url, json={**definition, "name": "x", "category": "PROMO"}) as response:
        error = (await response.json())["error"]
        assert (response.status, error["code"]) == (400, 100)
        assert error["message"].startswith("(#100) Param category must be one of")

    cloud.auto_approve = True
    async with client.post(url, json={**definition, "name": "relance"}) as response:
        assert (await response.json())["status"] == "APPROVED"
    async with client.get(url, params={"status": "APPROVED"}) as response:
        names = [entry["name"] for entry in (await response.json())["data"]]
    assert names == ["convocation", "relance"]


# ---------------------------------------------------------------------- media


async def upload(
    client: aiohttp.ClientSession,
    cloud: CloudApiEmulator,
    content: bytes,
    mime_type: str,
    filename: str,
    *,
    product: str | None = "whatsapp",
) -> tuple[int, JSONDict]:
    form = aiohttp.FormData()
    if product is not None:
        form.add_field("messaging_product", product)
    form.add_field("type", mime_type)
    form.add_field("file", io.BytesIO(content), filename=filename, content_type=mime_type)
    async with client.post(f"{cloud.url}/{PHONE_NUMBER_ID}/media", data=form) as response:
        return response.status, await response.json()


async def test_an_uploaded_document_is_sent_by_id(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    open_window(cloud, AMINA)
    pdf = b"%PDF-1.7\n" + bytes(100)
    status, answer = await upload(client, cloud, pdf, "application/pdf", "compte-rendu.pdf")
    assert status == 200 and set(answer) == {"id"}
    media_id = answer["id"]
    assert cloud.media[media_id] == ("compte-rendu.pdf", "application/pdf", pdf)

    document = {"id": media_id, "filename": "CR conseil.pdf", "caption": "Le compte rendu"}
    payload = {"messaging_product": "whatsapp", "to": AMINA, "type": "document"}
    status, _ = await send(client, cloud, {**payload, "document": document})
    assert status == 200
    record = cloud.sent[-1]
    assert (record.text, record.filename, record.media_id) == (
        "Le compte rendu",
        "CR conseil.pdf",
        media_id,
    )

    link = {"link": "https://example.org/cr.pdf"}
    assert (await send(client, cloud, {**payload, "document": link}))[0] == 200

    for bad, expected in [
        ({"id": "123456"}, "Invalid media id: 123456"),
        ({}, "exactly one of id or link"),
        ({"id": media_id, "link": "https://example.org/cr.pdf"}, "exactly one of id or link"),
    ]:
        status, answer = await send(client, cloud, {**payload, "document": bad})
        assert (status, answer["error"]["code"]) == (400, 131009)
        assert expected in details(answer)

    long_caption = {"id": media_id, "caption": "c" * 1025}
    status, answer = await send(client, cloud, {**payload, "document": long_caption})
    assert (status, answer["error"]["code"]) == (400, 100)


async def test_an_image_is_sent_with_its_caption(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    open_window(cloud, AMINA)
    png = b"\x89PNG\r\n\x1a\n" + bytes(24)
    _, answer = await upload(client, cloud, png, "image/png", "graphique.png")
    image = {"id": answer["id"], "caption": "Résultats"}
    payload = {"messaging_product": "whatsapp", "to": AMINA, "type": "image", "image": image}
    status, _ = await send(client, cloud, payload)
    assert status == 200
    assert cloud.sent[-1].text == "Résultats"


async def test_uploads_are_validated(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    status, answer = await upload(client, cloud, b"x", "application/pdf", "a.pdf", product=None)
    assert (status, answer["error"]["message"]) == (
        400,
        "(#100) The parameter messaging_product is required.",
    )
    status, answer = await upload(client, cloud, b"a,b", "text/csv", "a.csv")
    assert status == 400
    assert "Received file of type 'text/csv'" in answer["error"]["message"]
    status, answer = await upload(client, cloud, bytes(6 * 1024 * 1024), "image/png", "big.png")
    assert (status, answer["error"]["code"]) == (400, 131053)
    assert cloud.media == {}


# ---------------------------------------------------------------------- rate, delay, failures


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_throughput_beyond_80_per_second_is_refused(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    cloud.clock = clock
    cloud.send_statuses = False
    open_window(cloud, AMINA, BILAL)
    cloud.enforce_rate()

    burst = [text(AMINA if index % 2 else BILAL, f"n°{index}") for index in range(100)]
    answers = await asyncio.gather(*(send(client, cloud, payload) for payload in burst))
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 80 and statuses.count(400) == 20
    refused = next(answer for status, answer in answers if status == 400)["error"]
    assert (refused["code"], refused["message"]) == (130429, "(#130429) Rate limit hit")
    assert refused["error_data"]["details"] == "Cloud API message throughput has been reached."
    assert len(cloud.refusals) == 20 and all(not message.accepted for message in cloud.refusals)
    assert len(cloud.accepted()) == 80
    assert len(cloud.messages_to(AMINA)) + len(cloud.messages_to(BILAL)) == 80
    assert cloud.max_rate() == 80

    clock.now += 0.25  # 20 tokens
    statuses = [(await send(client, cloud, text(AMINA, "again")))[0] for _ in range(21)]
    assert statuses == [200] * 20 + [400]

    cloud.lift_rate()
    assert (await send(client, cloud, text(AMINA, "free")))[0] == 200


async def test_a_real_burst_is_bounded_near_80_per_second(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    cloud.send_statuses = False
    open_window(cloud, AMINA)
    cloud.enforce_rate(per_second=80.0)
    started = time.monotonic()
    answers = await asyncio.gather(*(send(client, cloud, text(AMINA, "x")) for _ in range(120)))
    elapsed = time.monotonic() - started
    accepted = sum(status == 200 for status, _ in answers)
    assert 80 <= accepted <= 80 + 80 * elapsed + 1
    assert len(cloud.refusals) == 120 - accepted
    assert {message.error_code for message in cloud.refusals} == {130429}


async def test_the_pair_rate_limit_is_per_recipient(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    cloud.clock = clock
    cloud.send_statuses = False
    open_window(cloud, AMINA, BILAL)
    cloud.enforce_rate(pair_per_6s=1)

    assert (await send(client, cloud, text(AMINA, "1")))[0] == 200
    status, answer = await send(client, cloud, text(AMINA, "2"))
    assert (status, answer["error"]["code"]) == (400, 131056)
    assert answer["error"]["message"] == (
        "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    )
    assert (await send(client, cloud, text(BILAL, "1")))[0] == 200
    clock.now += 5.9
    assert (await send(client, cloud, text(AMINA, "3")))[0] == 400
    clock.now += 0.1
    assert (await send(client, cloud, text(AMINA, "4")))[0] == 200
    assert [message.text for message in cloud.refusals] == ["2", "3"]
    assert cloud.max_rate(window=5.0, wa_id=AMINA) == pytest.approx(1 / 5)


async def test_the_response_delay_comes_after_processing(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    open_window(cloud, AMINA)
    cloud.response_delay = 0.2
    started = time.monotonic()
    request = asyncio.create_task(send(client, cloud, text(AMINA, "lent")))
    await cloud.wait_until(lambda: cloud.sent, timeout=0.15)
    await asyncio.sleep(0.05)
    assert not request.done()
    assert receiver.statuses() == []  # statuses follow the answer
    status, answer = await request
    assert status == 200 and time.monotonic() - started >= 0.2
    await statuses_of(cloud, receiver, answer["messages"][0]["id"], 2)

    started = time.monotonic()
    status, _ = await upload(client, cloud, b"%PDF", "application/pdf", "a.pdf")
    assert status == 200 and time.monotonic() - started >= 0.2


async def test_injected_failures(cloud: CloudApiEmulator, client: aiohttp.ClientSession) -> None:
    open_window(cloud, AMINA, BILAL)

    cloud.fail(130429)
    status, answer = await send(client, cloud, text(AMINA, "1"))
    assert (status, answer["error"]["message"]) == (400, "(#130429) Rate limit hit")
    assert (await send(client, cloud, text(AMINA, "2")))[0] == 200

    cloud.fail(131056, to=AMINA)
    assert (await send(client, cloud, text(BILAL, "3")))[0] == 200
    status, answer = await send(client, cloud, text(AMINA, "4"))
    assert (status, answer["error"]["code"]) == (400, 131056)

    cloud.fail(131000)
    status, answer = await send(client, cloud, text(AMINA, "5"))
    assert (status, answer["error"]["message"]) == (500, "(#131000) Something went wrong")

    cloud.fail(131049, times=2, message="Healthy ecosystem", status=400)
    for body in ("6", "7"):
        status, answer = await send(client, cloud, text(AMINA, body))
        assert (status, details(answer)) == (400, "Healthy ecosystem")
    assert (await send(client, cloud, text(AMINA, "8")))[0] == 200

    cloud.fail(2)
    status, answer = await send(client, cloud, text(AMINA, "9"))
    assert status == 503 and answer["error"]["is_transient"] is True

    cloud.fail(131026, status=502)
    assert (await send(client, cloud, text(AMINA, "10")))[0] == 502

    assert [message.text for message in cloud.messages_to(AMINA)] == ["2", "8"]
    assert [message.error_code for message in cloud.sent if not message.accepted] == [
        130429,
        131056,
        131000,
        131049,
        131049,
        2,
        131026,
    ]


async def test_an_undeliverable_number_fails_by_webhook(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    open_window(cloud, AMINA)
    cloud.undeliverable(AMINA)
    cloud.add_template("rappel", "fr", "Rappel")
    for payload in (text(AMINA, "Bonjour"), template(AMINA, "rappel")):
        status, answer = await send(client, cloud, payload)
        assert status == 200
        (failed,) = await statuses_of(cloud, receiver, answer["messages"][0]["id"], 1)
        assert failed["status"] == "failed" and failed["errors"][0]["code"] == 131026
        assert failed["errors"][0]["title"] == "Message undeliverable"
    assert cloud.messages_to(AMINA) == []
    cloud.deliverable(AMINA)
    await send(client, cloud, text(AMINA, "Bonjour"))
    assert len(cloud.messages_to(AMINA)) == 1


async def test_read_receipts_and_silence(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    open_window(cloud, AMINA)
    cloud.mark_read = True
    _, answer = await send(client, cloud, text(AMINA, "lu ?"))
    found = await statuses_of(cloud, receiver, answer["messages"][0]["id"], 3)
    assert [status["status"] for status in found] == ["sent", "delivered", "read"]
    assert "pricing" not in found[2]

    cloud.send_statuses = False
    _, answer = await send(client, cloud, text(AMINA, "silence"))
    await cloud.flush()
    assert receiver.statuses(answer["messages"][0]["id"]) == []
    assert cloud.sent[-1].statuses == []


async def test_legacy_webhooks_carry_the_conversation(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    open_window(cloud, AMINA)
    cloud.webhook_conversation = True
    _, answer = await send(client, cloud, text(AMINA, "hi"))
    sent, delivered = await statuses_of(cloud, receiver, answer["messages"][0]["id"], 2)
    assert sent["conversation"]["origin"] == {"type": "service"}
    assert "expiration_timestamp" in sent["conversation"]
    assert "expiration_timestamp" not in delivered["conversation"]


# ---------------------------------------------------------------------- people


async def test_a_person_writing_posts_a_signed_meta_webhook(
    cloud: CloudApiEmulator, receiver: Receiver
) -> None:
    amina = cloud.user(AMINA, name="Amina B.")
    assert cloud.user(AMINA) is amina
    assert await amina.send("Bonjour, c'est é/è") == 200

    assert receiver.refused == 0
    (body,) = receiver.bodies
    assert body["object"] == "whatsapp_business_account"
    (entry,) = body["entry"]
    assert entry["id"] == WABA_ID
    (change,) = entry["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {
        "display_phone_number": BUSINESS_NUMBER,
        "phone_number_id": PHONE_NUMBER_ID,
    }
    assert value["contacts"] == [{"profile": {"name": "Amina B."}, "wa_id": AMINA}]
    (message,) = value["messages"]
    assert message["from"] == AMINA and message["type"] == "text"
    assert message["text"] == {"body": "Bonjour, c'est é/è"}
    assert message["id"].startswith("wamid.") and message["timestamp"].isdigit()
    assert abs(int(message["timestamp"]) - time.time()) < 5

    raw = receiver.raw[0]
    assert raw == amina.last_posted
    assert b"\\u00e9" in raw and b"\\/" in raw  # escaped like Meta's payloads
    assert raw == encode_webhook(body)
    (post,) = cloud.webhook_posts
    assert (post.kind, post.status, post.signature) == ("message", 200, cloud.sign(raw))


async def test_forged_malformed_and_replayed_webhooks(
    cloud: CloudApiEmulator, receiver: Receiver
) -> None:
    amina = cloud.user(AMINA)
    await amina.send("Bonjour")
    assert amina.last_posted is not None
    original = amina.last_posted

    assert await cloud.post(original, "sha256=" + "0" * 64) == 403
    assert await cloud.post(original, None) == 403
    assert await cloud.post(b"not json", cloud.sign(b"not json")) == 400
    assert await cloud.post(original, cloud.sign(original)) == 200
    first, replayed = receiver.messages()
    assert first == replayed
    assert receiver.refused == 2
    assert [post.kind for post in cloud.webhook_posts] == ["message", "raw", "raw", "raw", "raw"]

    receiver.answer = 500
    assert await amina.send("encore") == 500
    assert cloud.webhook_posts[-1].status == 500


async def test_tapping_reply_buttons_and_list_rows(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    amina = cloud.user(AMINA)
    await amina.send("Bonjour")
    await send(client, cloud, buttons(AMINA, "Vous venez ?", "Oui", "Non", ids=["yes", "no"]))
    question = await amina.next_message()

    assert await amina.tap("Non") == 200
    tap = receiver.messages()[-1]
    assert tap["type"] == "interactive"
    assert tap["context"] == {"from": BUSINESS_NUMBER, "id": question.wamid}
    assert tap["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "no", "title": "Non"},
    }

    menu = list_message(AMINA, "Quel créneau ?", [("tue", "Mardi"), ("thu", "Jeudi")])
    menu["interactive"]["action"]["sections"][0]["rows"][1]["description"] = "18 h 30"
    await send(client, cloud, menu)
    listing = await amina.next_message()
    await amina.tap("Jeudi")
    assert receiver.messages()[-1]["interactive"] == {
        "type": "list_reply",
        "list_reply": {"id": "thu", "title": "Jeudi", "description": "18 h 30"},
    }
    assert receiver.messages()[-1]["context"]["id"] == listing.wamid

    with pytest.raises(AssertionError, match=r"rows: \['Mardi', 'Jeudi'\]"):
        await amina.tap("Vendredi")

    await amina.tap_id("forged-id", question)
    forged = receiver.messages()[-1]
    assert forged["interactive"]["button_reply"] == {"id": "forged-id", "title": "forged-id"}
    assert forged["context"]["id"] == question.wamid
    await amina.tap_id("tue", kind="list_reply")
    assert receiver.messages()[-1]["interactive"]["list_reply"] == {"id": "tue", "title": "Mardi"}


async def test_tapping_needs_a_message_with_choices(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    amina = cloud.user(AMINA)
    await amina.send("Bonjour")
    await send(client, cloud, text(AMINA, "Rien à choisir"))
    await amina.next_message()
    with pytest.raises(AssertionError, match="no suitable message"):
        await amina.tap("Oui")


async def test_tapping_a_template_quick_reply(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    cloud.add_template("convocation", "fr", "Conseil le {{1}}", buttons=["Je viens", "Absent"])
    cloud.add_template("relance", "fr", "Toujours partant ?", buttons=["Oui"])
    amina = cloud.user(AMINA)
    await send(
        client,
        cloud,
        template(AMINA, "convocation", "jeudi", payloads=("rsvp:yes:42", "rsvp:no:42")),
    )
    invitation = await amina.next_message()
    assert invitation.quick_replies == {0: "rsvp:yes:42", 1: "rsvp:no:42"}

    with pytest.raises(AssertionError, match="say which label"):
        await amina.tap_template()
    assert await amina.tap_template("Absent") == 200
    tap = receiver.messages()[-1]
    assert tap["type"] == "button"
    assert tap["button"] == {"payload": "rsvp:no:42", "text": "Absent"}
    assert tap["context"] == {"from": BUSINESS_NUMBER, "id": invitation.wamid}
    with pytest.raises(AssertionError, match="Je viens"):
        await amina.tap_template("Peut-être")

    await send(client, cloud, template(AMINA, "relance"))
    await amina.tap_template()
    assert receiver.messages()[-1]["button"] == {"payload": "Oui", "text": "Oui"}

    status, answer = await send(client, cloud, template(AMINA, "relance", payloads=("a", "b")))
    assert (status, answer["error"]["code"]) == (400, 131009)


async def test_other_things_people_send(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession, receiver: Receiver
) -> None:
    amina = cloud.user(AMINA)
    await amina.send_location(48.8566, 2.3522, name="Mairie", address="Place de l'Hôtel de Ville")
    await send(client, cloud, text(AMINA, "Merci !"))
    thanks = await amina.next_message()
    await amina.send_reaction("👍")
    await amina.send_sticker()
    await amina.send_voice()
    await amina.send_image(caption="Le banc cassé")
    await amina.send_unsupported("edit")
    location, reaction, sticker, voice, image, unsupported = receiver.messages()

    assert location["location"] == {
        "latitude": 48.8566,
        "longitude": 2.3522,
        "name": "Mairie",
        "address": "Place de l'Hôtel de Ville",
    }
    assert reaction["reaction"] == {"message_id": thanks.wamid, "emoji": "👍"}
    assert sticker["sticker"]["mime_type"] == "image/webp"
    assert sticker["sticker"]["animated"] is False
    assert cloud.media[sticker["sticker"]["id"]][1] == "image/webp"
    assert voice["type"] == "audio" and voice["audio"]["voice"] is True
    assert voice["audio"]["mime_type"] == "audio/ogg; codecs=opus"
    assert image["image"]["caption"] == "Le banc cassé"
    content = cloud.media[image["image"]["id"]][2]
    assert image["image"]["sha256"] == base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert unsupported["type"] == "unsupported"
    assert unsupported["unsupported"] == {"type": "edit"}
    assert unsupported["errors"][0]["code"] == 131051
    assert receiver.refused == 0
    assert len({message["id"] for message in receiver.messages()}) == 6


async def test_inbox_next_message_and_wait_for(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    amina = cloud.user(AMINA)
    await send(client, cloud, text(AMINA, "hors fenêtre"))
    await amina.send("Bonjour")
    await send(client, cloud, text(AMINA, "Bienvenue"))
    await send(client, cloud, buttons(AMINA, "Inscrite ?", "Oui", "Non"))

    first = await amina.next_message()
    second = await amina.next_message()
    assert (first.text, second.buttons) == ("Bienvenue", ["Oui", "Non"])
    with pytest.raises(AssertionError) as failure:
        await amina.next_message(timeout=0.05)
    assert "failed 131047" in str(failure.value) and "hors fenêtre" in str(failure.value)

    found = await amina.wait_for(lambda message: bool(message.buttons), timeout=0.1)
    assert found is second
    assert amina.inbox == [first, second]

    async def late() -> None:
        await asyncio.sleep(0.05)
        await send(client, cloud, text(AMINA, "Rappel"))

    task = asyncio.create_task(late())
    reminder = await amina.wait_for(lambda message: message.text == "Rappel", timeout=2)
    await task
    assert isinstance(reminder, SentMessage) and reminder.delivered


async def test_wait_until_reports_a_timeout(cloud: CloudApiEmulator) -> None:
    with pytest.raises(AssertionError, match="still unmet"):
        await cloud.wait_until(lambda: None, timeout=0.05)


async def test_without_a_webhook_people_cannot_write(
    cloud: CloudApiEmulator, client: aiohttp.ClientSession
) -> None:
    cloud.webhook_url = None
    with pytest.raises(RuntimeError, match="webhook_url"):
        await cloud.user(AMINA).send("Bonjour")
    open_window(cloud, AMINA)
    await send(client, cloud, text(AMINA, "Bonjour"))
    await cloud.flush()
    assert [post.error for post in cloud.webhook_posts] == ["no webhook_url set"] * 2
