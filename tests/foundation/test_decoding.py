"""Constrained decoding: no invalid id can come out, and trie scores are exact log-likelihoods."""
from __future__ import annotations

import pytest
import torch

from prismrec.foundation.decoding import (UNREACHED_SCORE, ItemTrie, decoded_items, generate, item_targets,
                                           trie_search)
from prismrec.foundation.prompts import ItemSlot
from foundation_parts import N_ITEMS, make_encoder, make_network
from foundation_parts import image_features, item_index, one_thread, tokenizer  # noqa: F401 (fixtures)


@pytest.fixture
def setup(tokenizer, item_index):
    network = make_network(tokenizer, seed=3).eval()
    encoder = make_encoder(tokenizer, item_index)
    trie = ItemTrie(item_targets(encoder, N_ITEMS), eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id)
    batch = encoder.collate([encoder.source(["user 1 bought ", ItemSlot(2)]),
                             encoder.source(["user 2 bought ", ItemSlot(9), " , ", ItemSlot(4)])])
    return network, encoder, trie, batch


def test_trie_knows_valid_continuations():
    trie = ItemTrie([[5, 7, 1], [5, 8, 1], [6, 1]], eos_id=1, pad_id=0)
    assert trie.allowed([]) == [5, 6] and trie.allowed([5]) == [7, 8] and trie.allowed([6]) == [1]
    assert trie.allowed([5, 7, 1]) == [0] and trie.allowed([9]) == [0]
    assert trie.item_of([5, 8, 1, 0, 0]) == 1 and trie.item_of([5, 9, 1]) is None
    with pytest.raises(ValueError, match="same id tokens"):
        ItemTrie([[5, 1], [5, 1]], eos_id=1, pad_id=0)
    with pytest.raises(ValueError, match="must end with </s>"):
        ItemTrie([[5]], eos_id=1, pad_id=0)


def test_constrained_generate_only_produces_valid_items(setup):
    network, _, trie, batch = setup
    start = network.backbone.config.decoder_start_token_id

    def beams(**constraint):
        return generate(network, batch, num_beams=8, num_return_sequences=8, max_new_tokens=trie.max_depth,
                        **constraint)

    constrained = decoded_items(trie, beams(prefix_allowed_tokens_fn=trie.prefix_allowed_tokens_fn(start)), start)
    assert (constrained >= 0).all() and len(set(constrained[:8])) == 8
    free = decoded_items(trie, beams(), start)
    assert (free < 0).any()  # an untrained model left free names items that do not exist


def test_exact_trie_scores_are_the_items_log_likelihoods(setup):
    network, encoder, trie, batch = setup
    encoded, mask = network.encode(batch)
    scores = trie_search(network, encoded, mask, trie, N_ITEMS, beam_size=None)
    for item in (0, 7, 11):
        target = torch.tensor([encoder.item_target(item)] * 2)
        inputs = torch.cat([torch.zeros(2, 1, dtype=torch.long), target[:, :-1]], dim=1)
        log_probs = network.decoder_log_probs(encoded, mask, inputs)
        expected = log_probs.gather(2, target[:, :, None]).squeeze(2).sum(1)
        assert torch.allclose(scores[:, item], expected, atol=1e-5)


def test_a_narrow_beam_scores_only_reached_items(setup):
    network, _, trie, batch = setup
    encoded, mask = network.encode(batch)
    exact = trie_search(network, encoded, mask, trie, N_ITEMS, beam_size=None)
    narrow = trie_search(network, encoded, mask, trie, N_ITEMS, beam_size=1)
    reached = narrow > UNREACHED_SCORE
    assert (reached.sum(1) <= 4).all() and reached.any(1).all()  # one first token, its 4 children at most
    assert torch.allclose(narrow[reached], exact[reached])
