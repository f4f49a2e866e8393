"""Pydantic request and response models of the HTTP API (they make the OpenAPI schema at /docs)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from prismrec.serving.ingest import ID_MAX_LENGTH, ID_REGEX

MAX_K = 1000
ID_RULE = "1-128 letters, digits and _ . : @ -, starting with a letter or digit, no '..'"
ID_FIELD = Field(pattern=ID_REGEX, max_length=ID_MAX_LENGTH, description=ID_RULE)


class Error(BaseModel):
    """Every error: a message a person can act on, and a short machine-readable code."""

    error: str
    detail: str


class RecommendedItem(BaseModel):
    rank: int
    item_id: str
    score: float
    title: str


class Recommendations(BaseModel):
    user_id: str
    k: int
    exclude_seen: bool
    items: list[RecommendedItem]


class Item(BaseModel):
    item_id: str
    title: str
    fields: dict[str, str]
    has_image: bool
    image_url: str | None = None


class ItemList(BaseModel):
    items: list[Item]


class SimilarItems(BaseModel):
    item_id: str
    k: int
    items: list[RecommendedItem]


class ReachedUser(BaseModel):
    user_id: str
    rank: int = Field(description="the item's rank in the user's recommendations (1 = top)")


class Audience(BaseModel):
    item_id: str
    k: int
    count: int = Field(description="how many users now have the item in their top k")
    users: list[ReachedUser]


class IngestedItem(BaseModel):
    item: Item
    missing_content: list[str] = Field(description="features encoded as 'missing' (no text or no image)")
    audience: Audience


class InteractionIn(BaseModel):
    user_id: str = ID_FIELD
    item_id: str = ID_FIELD
    event: Literal["click", "view", "like", "purchase", "rating"] = "click"
    timestamp: float | None = Field(default=None, description="seconds since the epoch; default: now")


class InteractionAck(BaseModel):
    seq: int = Field(description="sequence number of the committed event")
    user_id: str
    item_id: str
    new_user: bool
    folded_in: bool = Field(description="the user's vector was re-solved by least-squares fold-in")


class User(BaseModel):
    user_id: str
    history: list[Item]


class UserList(BaseModel):
    users: list[str]
    total: int


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    n_users: int
    n_items: int
    index: str
    accepts_new_items: bool
    features: list[str]
