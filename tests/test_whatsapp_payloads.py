"""How replies are fitted to WhatsApp, and how Meta's webhook bodies are read: the adapter's
rules, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from bot.channels.whatsapp import payloads, templates
from bot.channels.whatsapp.channel import event_id, signature
from bot.channels.whatsapp.payloads import Incoming, Media, Words
from flows.engine import Attachment, Choice, Notice, NoticeKind, Reply
from flows.i18n import SHIPPED_LOCALES, Translator
from tests.whatsapp_emulator import signature_of

WORDS = Words.of("en")


def reply(text: str, *labels: str) -> Reply:
    return Reply(
        text, tuple((Choice(label, f"c:1:{index}"),) for index, label in enumerate(labels))
    )


def interactive(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "interactive"
    result: dict[str, Any] = message["interactive"]
    return result


def test_up_to_three_choices_are_reply_buttons() -> None:
    [message] = payloads.render(reply("Coming?", "Yes", "Maybe", "No"), WORDS)
    body = interactive(message)
    assert body["type"] == "button"
    assert [b["reply"]["title"] for b in body["action"]["buttons"]] == ["Yes", "Maybe", "No"]
    assert [b["reply"]["id"] for b in body["action"]["buttons"]] == ["c:1:0", "c:1:1", "c:1:2"]
    assert body["body"]["text"] == "Coming?"


def test_a_cut_label_keeps_its_full_wording_in_the_body() -> None:
    [message] = payloads.render(reply("Coming?", "I can't come this time, sorry", "Yes"), WORDS)
    body = interactive(message)
    titles = [b["reply"]["title"] for b in body["action"]["buttons"]]
    assert titles == ["I can't come this t…", "Yes"]
    assert all(payloads.width(title) <= 20 for title in titles)
    assert body["body"]["text"] == "Coming?\n\n• I can't come this time, sorry"


def test_twin_titles_after_cutting_are_made_distinct() -> None:
    labels = ["Neighbourhood north side", "Neighbourhood north centre"]
    [message] = payloads.render(reply("Where?", *labels), WORDS)
    titles = [b["reply"]["title"] for b in interactive(message)["action"]["buttons"]]
    assert len(set(titles)) == 2 and all(payloads.width(t) <= 20 for t in titles)


def test_four_to_ten_choices_are_a_list_with_descriptions_for_long_labels() -> None:
    labels = ["1", "2", "3", "4", "5", "I would rather not say where I live"]
    [message] = payloads.render(reply("Scale?", *labels), WORDS)
    body = interactive(message)
    assert body["type"] == "list" and body["action"]["button"] == "Choose"
    rows = body["action"]["sections"][0]["rows"]
    assert [row["title"] for row in rows][:5] == ["1", "2", "3", "4", "5"]
    assert rows[5]["title"] == "I would rather not say…"
    assert rows[5]["description"] == "I would rather not say where I live"


def test_more_than_ten_choices_page_with_a_more_row_that_comes_back_round() -> None:
    labels = [f"Day {n}" for n in range(1, 26)]  # 25: pages of 9, 9 and 7
    pages = [
        interactive(payloads.render(reply("Which day?", *labels), WORDS, menu=7, page=page)[0])
        for page in range(3)
    ]
    rows = [page["action"]["sections"][0]["rows"] for page in pages]
    assert [len(r) for r in rows] == [10, 10, 8]
    assert [r[-1]["id"] for r in rows] == ["wa-more:7:1", "wa-more:7:2", "wa-more:7:0"]
    assert all(r[-1]["title"] == "More…" for r in rows)
    shown = [row["title"] for page in rows for row in page[:-1]]
    assert shown == labels


def test_files_go_as_documents_and_images_with_their_caption() -> None:
    ics = Attachment("meeting.ics", b"BEGIN:VCALENDAR", "text/calendar")
    [document] = payloads.render(Reply("Invitation", attachment=ics), WORDS, Media("m1", ics))
    assert document == {
        "type": "document",
        "document": {"id": "m1", "filename": "meeting.ics", "caption": "Invitation"},
    }
    png = Attachment("chart.png", b"\x89PNG", "image/png", kind="photo")
    [image] = payloads.render(Reply("Chart", attachment=png), WORDS, Media("m2", png))
    assert image == {"type": "image", "image": {"id": "m2", "caption": "Chart"}}
    # With buttons, the file is the header of the message that carries them.
    with_buttons = Reply("Invitation", ((Choice("Yes", "y"),),), attachment=ics)
    [message] = payloads.render(with_buttons, WORDS, Media("m1", ics))
    assert interactive(message)["header"] == {
        "type": "document",
        "document": {"id": "m1", "filename": "meeting.ics"},
    }


def test_long_texts_are_split_and_a_long_body_leaves_its_start_in_text_messages() -> None:
    lines = [f"Line {n:04d} " + "x" * 60 for n in range(200)]  # about 14,000 characters
    messages = payloads.render(Reply("\n".join(lines)), WORDS)
    assert all(m["type"] == "text" and payloads.width(m["text"]["body"]) <= 4096 for m in messages)
    assert "\n".join(m["text"]["body"] for m in messages) == "\n".join(lines)
    long_question = reply("\n".join(lines[:30]), "Yes", "No")
    *before, last = payloads.render(long_question, WORDS)
    assert before and all(m["type"] == "text" for m in before)
    assert payloads.width(interactive(last)["body"]["text"]) <= 1024


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "text", "text": {"body": "aide"}}, {"command": "help"}),
        ({"type": "text", "text": {"body": "مساعدة"}}, {"command": "help"}),
        ({"type": "text", "text": {"body": "/mydata"}}, {"command": "mydata"}),
        ({"type": "text", "text": {"body": "STOP"}}, {"command": "stop"}),
        (
            {"type": "text", "text": {"body": "Bonjour ! #quartier-nord"}},
            {"command": "start", "argument": "quartier-nord"},
        ),
        ({"type": "text", "text": {"body": "Je veux aider"}}, {"text": "Je veux aider"}),
        (
            {
                "type": "interactive",
                "interactive": {"type": "list_reply", "list_reply": {"id": "c:3:x"}},
            },
            {"choice": "c:3:x"},
        ),
        (
            {"type": "location", "location": {"latitude": 48.8, "longitude": 2.3}},
            {"location": (48.8, 2.3)},
        ),
        ({"type": "sticker", "sticker": {"id": "1"}}, {"text": None, "command": None}),
    ],
)
def test_messages_become_events(message: dict[str, Any], expected: dict[str, Any]) -> None:
    words = {"help": "help", "aide": "help", "مساعدة": "help", "stop": "stop", "mydata": "mydata"}
    inbound = payloads.to_inbound(
        Incoming("33600000000", "Sam", {"id": "wamid.1", **message}), words
    )
    assert inbound is not None
    for name, value in expected.items():
        assert getattr(inbound, name) == value, name
    assert (inbound.channel, inbound.sender_id, inbound.first_name) == (
        "whatsapp",
        "33600000000",
        "Sam",
    )


def test_a_reaction_needs_no_answer() -> None:
    reaction = {"id": "w", "type": "reaction", "reaction": {"emoji": "👍", "message_id": "x"}}
    assert payloads.to_inbound(Incoming("1", "", reaction), {}) is None


def test_the_invitation_link_sentence_tells_the_language() -> None:
    for locale in SHIPPED_LOCALES:
        assert payloads.guess_language(payloads.join_text(Translator(locale), "x")) == locale
    assert payloads.guess_language("Bonjour") is None


def test_webhook_bodies_give_messages_and_receipts_and_ignore_the_rest() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "900800700",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "contacts": [{"profile": {"name": "Amina"}, "wa_id": "336"}],
                            "messages": [
                                {
                                    "from": "336",
                                    "id": "wamid.A",
                                    "timestamp": "1",
                                    "type": "text",
                                    "text": {"body": "hi"},
                                },
                                {"from": 5, "id": "wamid.B"},  # malformed: left aside
                            ],
                            "statuses": [
                                {
                                    "id": "wamid.C",
                                    "status": "failed",
                                    "recipient_id": "337",
                                    "errors": [{"code": 131047, "title": "Re-engagement message"}],
                                }
                            ],
                        },
                    },
                    {"field": "account_update", "value": {}},
                ],
            }
        ],
    }
    found = payloads.parse(body)
    assert [(i.wa_id, i.name, i.id) for i in found.incoming] == [("336", "Amina", "wamid.A")]
    [receipt] = found.receipts
    assert (receipt.message_id, receipt.status, receipt.recipient, receipt.errors) == (
        "wamid.C",
        "failed",
        "337",
        (131047,),
    )
    assert payloads.parse({"object": "page"}).incoming == []
    assert payloads.parse([1, 2]).receipts == []


def test_event_ids_and_signatures() -> None:
    assert event_id("wamid.A") == event_id("wamid.A") != event_id("wamid.B")
    assert 0 < event_id("wamid.A") < 2**63
    body = b'{"entry":[{"name":"Zo\\u00e9"}]}'
    assert signature("secret", body) == signature_of(body, "secret")  # as Meta signs
    assert signature("secret", body) != signature("other", body)


def test_every_template_exists_in_every_language_with_its_values_in_order() -> None:
    definitions = templates.definitions()
    assert len(definitions) == len(templates.TEMPLATES) * len(SHIPPED_LOCALES)
    for definition in definitions:
        body, buttons = definition["components"]
        assert definition["category"] == "UTILITY"
        count = len(body["example"]["body_text"][0])
        assert [f"{{{{{n}}}}}" in body["text"] for n in range(1, count + 1)] == [True] * count
        assert not body["text"].rstrip(".").endswith("}}")  # Meta refuses a trailing value
        assert 1 <= len(buttons["buttons"][0]["text"]) <= 25
    notice = Notice(
        NoticeKind.MEETING,
        "ar",
        council="Conseil",
        title="Atelier\nvélo",
        when="mardi",
        place="Ici",
    )
    name, template = templates.message(notice, "wa-open:12")
    assert name == "coupdepouce_meeting" and template["language"] == {"code": "ar"}
    values = [p["text"] for p in template["components"][0]["parameters"]]
    assert values == ["Conseil", "Atelier vélo", "mardi", "Ici"]  # one line each
    assert template["components"][1]["parameters"] == [{"type": "payload", "payload": "wa-open:12"}]
