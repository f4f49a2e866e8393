"""Prompts, image tokens, whole-word ids, missing images and truncation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prismrec.foundation.prompts import FAMILIES, ItemSlot, render, template_named, templates
from prismrec.foundation.tokens import PromptTruncated
from foundation_parts import N_ITEMS, make_encoder, make_network
from foundation_parts import image_features, item_index, one_thread, tokenizer  # noqa: F401 (fixtures)


def test_every_family_has_training_and_held_out_templates():
    for family in FAMILIES:
        training, held_out = templates(family), templates(family, held_out=True)
        assert len(training) >= 2 and len(held_out) >= 1
        assert not {t.name for t in training} & {t.name for t in held_out}
    with pytest.raises(ValueError, match="unknown task family 'rating'"):
        templates("rating")
    with pytest.raises(KeyError, match="unknown prompt template"):
        template_named("sequential-99")


def test_render_places_item_slots():
    segments = render(template_named("direct-1").source, user="u7", candidates=[4, 2])
    assert segments == ["which item of these should user u7 buy ? ", ItemSlot(4), " , ", ItemSlot(2)]
    with pytest.raises(ValueError, match="no item was given"):
        render("{item}")


def test_items_become_id_tokens_then_image_slots_with_one_whole_word_id(tokenizer, item_index):
    has_image = np.ones(N_ITEMS, dtype=bool)
    encoder = make_encoder(tokenizer, item_index, has_image=has_image, n_image_tokens=2)
    ids, words, images, slots = encoder.source(["bought ", ItemSlot(5), " , ", ItemSlot(7)])
    tokens = tokenizer.convert_ids_to_tokens(ids)
    start = tokens.index(item_index.tokens_of(5)[0])
    assert tokens[start:start + 4] == item_index.tokens_of(5) + ["<img>", "<img>"]
    assert words[start:start + 4] == [1, 1, 1, 1] and images[start:start + 4] == [-1, -1, 5, 5]
    assert slots[start:start + 4] == [-1, -1, 0, 1]
    second = tokens.index(item_index.tokens_of(7)[0], start + 4)
    assert words[second] == 2 and tokens[-1] == "</s>" and words[0] == 0


def test_image_tokens_come_from_the_mapping_network_and_missing_images_are_masked(
        tokenizer, item_index, image_features):
    has_image = np.abs(image_features).sum(1) > 0
    encoder = make_encoder(tokenizer, item_index, has_image=has_image)
    network = make_network(tokenizer, images=image_features)
    batch = encoder.collate([encoder.source(["a ", ItemSlot(5), " b ", ItemSlot(3)])])
    slots = torch.nonzero(batch["image_items"][0] >= 0).ravel()
    of_item = batch["image_items"][0, slots]
    assert batch["attention_mask"][0, slots[of_item == 3]].tolist() == [0, 0]  # item 3: no image
    assert batch["attention_mask"][0, slots[of_item == 5]].tolist() == [1, 1]
    embeds = network.input_embeddings(batch)
    expected = network.image_mapper(torch.from_numpy(image_features[[5]]))[0]
    assert torch.allclose(embeds[0, slots[of_item == 5]], expected)
    changed = image_features.copy()
    changed[5] += 1.0
    network.item_image_features.copy_(torch.from_numpy(changed))
    moved = (network.input_embeddings(batch) - embeds).abs().sum(-1)[0]
    assert set(torch.nonzero(moved).ravel().tolist()) == set(slots[of_item == 5].tolist())


def test_no_image_features_means_no_image_slots(tokenizer, item_index):
    encoder = make_encoder(tokenizer, item_index, has_image=None)
    ids, _, images, _ = encoder.source([ItemSlot(1)])
    assert encoder.image_id not in ids and max(images) == -1


def test_long_prompts_drop_the_oldest_history_with_a_counted_warning(tokenizer, item_index):
    encoder = make_encoder(tokenizer, item_index, has_image=None, max_length=24)
    text = template_named("sequential-2").source
    history = np.arange(N_ITEMS)
    ids, *_ = encoder.fitted_source(lambda kept: render(text, user="1", history=kept), history)
    assert len(ids) <= 24
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert item_index.tokens_of(11)[0] in tokens  # the most recent item stays
    encoder.fitted_source(lambda kept: render(text, user="1", history=kept), history)
    with pytest.warns(PromptTruncated, match="2 prompts were longer than max_length=24"):
        encoder.warn_truncated()
    tiny = make_encoder(tokenizer, item_index, has_image=None, max_length=3)
    with pytest.raises(ValueError, match="a prompt without history has .* max_length=3"):
        tiny.fitted_source(lambda kept: render(text, user="1", history=kept), history)


def test_a_tokenizer_of_another_id_scheme_is_refused(tokenizer):
    from prismrec.foundation.item_ids import random_ids

    other = random_ids(N_ITEMS, base=2, seed=0)  # tokens up to <d_1>: unknown to this tokenizer
    with pytest.raises(ValueError, match="made for another id scheme"):
        make_encoder(tokenizer, other)
