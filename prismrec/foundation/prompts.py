"""Personalised prompt templates (P5/VIP5 style) for three task families.

A template is plain text with slots: ``{user}`` (raw user id), ``{history}`` (the user's
items, oldest first), ``{item}`` (one item) and ``{candidates}`` (a list of items).
Rendering gives *segments*: strings, and :class:`ItemSlot` markers where an item's id
tokens (and image tokens) go; :mod:`prismrec.foundation.tokens` turns them into ids.

Some templates per family are held out (``held_out=True``): training never uses them,
so evaluating with them measures zero-shot transfer to unseen phrasings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

FAMILIES = ("sequential", "direct", "explanation")
_SLOT = re.compile(r"\{(user|history|item|candidates)\}")


@dataclass(frozen=True)
class Template:
    """One phrasing of a task: ``source`` is the prompt, ``target`` what the model answers."""

    name: str
    family: str
    source: str
    target: str
    held_out: bool = False


@dataclass(frozen=True)
class ItemSlot:
    """Marks the place of one item (index into the catalog) inside a rendered prompt."""

    item: int


# Targets: "{item}" is the item's id tokens; "{answer}" is a word (yes/no) or a text.
TEMPLATES = (
    Template("sequential-1", "sequential", "given the purchase history of user {user} : {history} , "
             "predict the next item the user will buy .", "{item}"),
    Template("sequential-2", "sequential", "user {user} has bought {history} . what should the user buy next ?",
             "{item}"),
    Template("sequential-3", "sequential", "here is the history of user {user} : {history} . "
             "recommend the next item .", "{item}"),
    Template("sequential-4", "sequential", "items bought by user {user} in order : {history} . next item ?",
             "{item}"),
    Template("sequential-5", "sequential", "user {user} interacted with {history} . which item comes next ?",
             "{item}", held_out=True),
    Template("direct-1", "direct", "which item of these should user {user} buy ? {candidates}", "{item}"),
    Template("direct-2", "direct", "pick the item user {user} likes most : {candidates}", "{item}"),
    Template("direct-3", "direct", "will user {user} like item {item} ? answer yes or no .", "{answer}"),
    Template("direct-4", "direct", "from {candidates} , choose one for user {user} .", "{item}",
             held_out=True),
    Template("explanation-1", "explanation", "user {user} bought item {item} . give a short review title .",
             "{answer}"),
    Template("explanation-2", "explanation", "what would user {user} say about item {item} ?", "{answer}"),
    Template("explanation-3", "explanation", "summarise why user {user} chose {item} .", "{answer}",
             held_out=True),
)


def templates(family: str, *, held_out: bool | None = False) -> list[Template]:
    """Templates of ``family``; ``held_out=False`` the training ones, True the zero-shot ones,
    None all of them.

    Example:
        >>> [t.name for t in templates("sequential", held_out=True)]
        ['sequential-5']
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; choose one of {list(FAMILIES)}")
    return [t for t in TEMPLATES if t.family == family and (held_out is None or t.held_out == held_out)]


def template_named(name: str) -> Template:
    for template in TEMPLATES:
        if template.name == name:
            return template
    raise KeyError(f"unknown prompt template {name!r}; known: {[t.name for t in TEMPLATES]}")


def render(text: str, *, user: str = "", history=(), item: int | None = None,
           candidates=(), answer: str = "") -> list[str | ItemSlot]:
    """Fill a template string; items become :class:`ItemSlot` segments, lists are comma-separated.

    Example:
        >>> render("user {user} bought {history} .", user="7", history=[3, 5])
        ['user 7 bought ', ItemSlot(item=3), ' , ', ItemSlot(item=5), ' .']
    """
    text = text.replace("{answer}", answer)
    segments: list[str | ItemSlot] = []
    position = 0
    for match in _SLOT.finditer(text):
        segments.append(text[position:match.start()])
        slot = match.group(1)
        if slot == "user":
            segments.append(str(user))
        elif slot == "item":
            if item is None:
                raise ValueError(f"template {text!r} has an {{item}} slot but no item was given")
            segments.append(ItemSlot(int(item)))
        else:
            for rank, value in enumerate(history if slot == "history" else candidates):
                if rank:
                    segments.append(" , ")
                segments.append(ItemSlot(int(value)))
        position = match.end()
    segments.append(text[position:])
    return _merge_text(segments)


def _merge_text(segments: list) -> list[str | ItemSlot]:
    merged: list[str | ItemSlot] = []
    for segment in segments:
        if isinstance(segment, str):
            if not segment:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] += segment
                continue
        merged.append(segment)
    return merged


def plain_text(segments: list[str | ItemSlot]) -> str:
    """The text parts only (items left out): what the tokenizer is trained on."""
    return " ".join(s for s in segments if isinstance(s, str))
