"""Tiny foundation-model parts shared by the tests: 12 items, a trained tokenizer, a tiny T5.

(A module with its own name: ``conftest`` would clash with the root ``tests/conftest.py``.)
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prismrec.foundation.backbone import build_t5, train_tokenizer
from prismrec.foundation.item_ids import random_ids
from prismrec.foundation.model import FoundationModel
from prismrec.foundation.prompts import TEMPLATES, plain_text, render
from prismrec.foundation.tokens import PromptEncoder

N_ITEMS = 12


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and the machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def item_index():
    return random_ids(N_ITEMS, base=4, seed=0)  # two tokens per item


@pytest.fixture(scope="session")
def tokenizer(item_index):
    texts = [plain_text(render(t.source, user=str(u), history=[0], item=0, candidates=[0], answer="great sound"))
             for t in TEMPLATES for u in range(5)]
    return train_tokenizer(texts, item_index.vocabulary(), vocab_size=80)


def make_network(tokenizer, images=None, n_image_tokens=2, seed=0):
    torch.manual_seed(seed)
    return FoundationModel(build_t5("tiny", len(tokenizer), dropout=0.0), item_image_features=images,
                           n_image_tokens=n_image_tokens)


def make_encoder(tokenizer, item_index, has_image=None, **options):
    return PromptEncoder(tokenizer, item_index, has_image=has_image, **options)


@pytest.fixture
def image_features():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(N_ITEMS, 6)).astype(np.float32)
    features[3] = 0.0  # item 3 has no image
    return features
