"""The skills catalogue shipped with every new council, and how a skill and a time of the
week are named."""

from __future__ import annotations

from dataclasses import dataclass

from flows.i18n import N_, Translator
from storage.models import Skill

AVAILABILITY = {
    "weekdays": N_("Weekdays"),
    "evenings": N_("Evenings"),
    "weekends": N_("Weekends"),
}

CATEGORIES: dict[str, str] = {
    "home": N_("Home and repairs"),
    "care": N_("Care and learning"),
    "words": N_("Languages and paperwork"),
    "digital": N_("Computers and phones"),
    "arts": N_("Arts and events"),
    "outdoors": N_("Outdoors and sport"),
    "transport": N_("Transport"),
    "other": N_("Other"),
}


@dataclass(frozen=True)
class DefaultSkill:
    key: str
    category: str
    label: str  # marked for translation


DEFAULT_SKILLS: tuple[DefaultSkill, ...] = (
    DefaultSkill("cooking", "home", N_("Cooking")),
    DefaultSkill("sewing", "home", N_("Sewing")),
    DefaultSkill("diy", "home", N_("DIY and repairs")),
    DefaultSkill("childcare", "care", N_("Childcare")),
    DefaultSkill("tutoring", "care", N_("Tutoring")),
    DefaultSkill("translation", "words", N_("Translation")),
    DefaultSkill("paperwork", "words", N_("Help with paperwork")),
    DefaultSkill("it_help", "digital", N_("Computer and phone help")),
    DefaultSkill("music", "arts", N_("Music")),
    DefaultSkill("photo_video", "arts", N_("Photography and video")),
    DefaultSkill("design", "arts", N_("Graphic design")),
    DefaultSkill("event_setup", "arts", N_("Setting up events")),
    DefaultSkill("gardening", "outdoors", N_("Gardening")),
    DefaultSkill("sport", "outdoors", N_("Sport")),
    DefaultSkill("van", "transport", N_("Driving, a van")),
)
DEFAULT_LABELS = {skill.key: skill.label for skill in DEFAULT_SKILLS}
TRANSLATION_KEY = "translation"


def skill_label(skill: Skill, t: Translator) -> str:
    """The skill's name in this language: the council's own label, else the shipped one."""
    labels = skill.labels or {}
    if t.locale in labels:
        return str(labels[t.locale])
    if skill.key in DEFAULT_LABELS:
        return t._(DEFAULT_LABELS[skill.key])
    return str(next(iter(labels.values()), skill.key))


def category_label(category: str, t: Translator) -> str:
    return t._(CATEGORIES.get(category, CATEGORIES["other"]))
