"""Constrained decoding over a prefix trie of valid item ids: no invalid item can come out.

- :class:`ItemTrie` holds every item's target ``id tokens + </s>``; its
  :meth:`~ItemTrie.prefix_allowed_tokens_fn` plugs into Hugging Face ``generate``.
- :func:`trie_search` is a batched beam search over the trie that returns item
  log-likelihoods (``beam_size=None`` expands the whole trie: exact scores for every
  item). It is written here because ``generate`` returns token sequences, while ranking
  needs per-item scores for many prompts at once.
"""
from __future__ import annotations

import numpy as np
import torch

#: score of items the beam did not reach: finite, below any log-likelihood the search returns
UNREACHED_SCORE = -1.0e4


class ItemTrie:
    """Prefix trie over item target sequences (lists of token ids ending in ``eos_id``).

    Example:
        >>> trie = ItemTrie([[5, 7, 1], [5, 8, 1]], eos_id=1, pad_id=0)
        >>> trie.allowed([5]), trie.item_of([5, 8, 1])
        ([7, 8], 1)
    """

    def __init__(self, targets: list[list[int]], *, eos_id: int, pad_id: int) -> None:
        self.eos_id, self.pad_id = eos_id, pad_id
        self.children: list[dict[int, int]] = [{}]
        self.item_at: dict[int, int] = {}
        for item, target in enumerate(targets):
            if not target or target[-1] != eos_id:
                raise ValueError(f"item {item}: a target must end with </s> (id {eos_id}), got {target}")
            node = 0
            for token in target:
                node = self._child(node, int(token))
            if node in self.item_at:
                raise ValueError(f"items {self.item_at[node]} and {item} have the same id tokens {target}")
            self.item_at[node] = item
        self.max_depth = max((len(t) for t in targets), default=0)

    def _child(self, node: int, token: int) -> int:
        if token not in self.children[node]:
            self.children.append({})
            self.children[node][token] = len(self.children) - 1
        return self.children[node][token]

    def node_of(self, prefix) -> int | None:
        node = 0
        for token in prefix:
            node = self.children[node].get(int(token))
            if node is None:
                return None
        return node

    def allowed(self, prefix) -> list[int]:
        """Tokens that may follow ``prefix``; after a complete id only padding."""
        node = self.node_of(prefix)
        if node is None or node in self.item_at:
            return [self.pad_id]
        return sorted(self.children[node])

    def item_of(self, tokens) -> int | None:
        """The item a generated sequence names (padding after ``</s>`` ignored), or None."""
        tokens = [int(t) for t in tokens]
        if self.eos_id in tokens:
            tokens = tokens[: tokens.index(self.eos_id) + 1]
        node = self.node_of(tokens)
        return self.item_at.get(node) if node is not None else None

    def prefix_allowed_tokens_fn(self, decoder_start_token_id: int):
        """A ``prefix_allowed_tokens_fn`` for ``generate``: the decoder input starts with the start token."""
        def allowed_tokens(batch_id: int, sentence: torch.Tensor) -> list[int]:
            tokens = sentence.tolist()
            if tokens and tokens[0] == decoder_start_token_id:
                tokens = tokens[1:]
            return self.allowed(tokens)

        return allowed_tokens


@torch.no_grad()
def trie_search(model, encoded, mask: torch.Tensor, trie: ItemTrie, n_items: int, *, beam_size: int | None = 20,
                start_id: int = 0) -> torch.Tensor:
    """Item scores ``[B, n_items]``: summed token log-probabilities of each reached item's target.

    At every depth the best ``beam_size`` unfinished prefixes per prompt are expanded
    along the trie; items whose ``</s>`` is reached are finished with their score. Items
    never reached get :data:`UNREACHED_SCORE`. ``beam_size=None`` expands everything.
    The decoder runs one token per step on a key/value cache that follows the hypotheses,
    so the encoder's keys and values are projected once per prompt, not once per prefix.

    Example:
        >>> scores = trie_search(model, encoded, mask, trie, n_items, beam_size=20)  # doctest: +SKIP
    """
    n_rows = mask.shape[0]
    scores = torch.full((n_rows, n_items), UNREACHED_SCORE, dtype=torch.float32)
    hidden = encoded.last_hidden_state
    # hypotheses: parallel lists of prompt row, trie node, score; plus the last token fed
    rows, nodes, totals = list(range(n_rows)), [0] * n_rows, [0.0] * n_rows
    tokens, parents, cache = [start_id] * n_rows, None, None
    for _ in range(trie.max_depth):
        if not rows:
            break
        log_probs, cache = _decoder_step(model, hidden, mask, rows, tokens, cache, parents)
        candidates: dict[int, list] = {}
        for k, (row, node) in enumerate(zip(rows, nodes)):
            children = trie.children[node]
            token_scores = (totals[k] + log_probs[k, list(children)]).tolist()
            for (token, child), value in zip(children.items(), token_scores):
                if child in trie.item_at:
                    scores[row, trie.item_at[child]] = value
                else:
                    candidates.setdefault(row, []).append((value, child, token, k))
        rows, nodes, totals, tokens, parents = [], [], [], [], []
        for row, options in candidates.items():
            if beam_size is not None and len(options) > beam_size:
                options = sorted(options, key=lambda option: -option[0])[:beam_size]
            for value, child, token, parent in options:
                rows.append(row), nodes.append(child), totals.append(value), tokens.append(token), parents.append(parent)
    return scores


def _decoder_step(model, hidden, mask, rows, tokens, cache, parents):
    """Log-probabilities of the next token for each hypothesis, and the cache that continues them."""
    from transformers.modeling_outputs import BaseModelOutput

    index = torch.as_tensor(rows, dtype=torch.long, device=hidden.device)
    if cache is not None:
        cache.reorder_cache(torch.as_tensor(parents, dtype=torch.long, device=hidden.device))
    output = model.backbone(encoder_outputs=BaseModelOutput(last_hidden_state=hidden[index]),
                            attention_mask=mask[index], cache=cache, use_cache=True,
                            decoder_input_ids=torch.as_tensor(tokens, dtype=torch.long, device=hidden.device)[:, None])
    return torch.log_softmax(output.logits[:, -1].float(), dim=-1).cpu(), output.cache


@torch.no_grad()
def generate(network, batch: dict[str, torch.Tensor], **generate_options) -> torch.Tensor:
    """Hugging Face ``generate`` from a prompt batch (image tokens, whole words, virtual prompt).

    The encoder runs afresh on every call: ``generate`` expands ``encoder_outputs`` in place
    for beams, so one output must never be passed twice.

    Example:
        >>> start = network.backbone.config.decoder_start_token_id  # doctest: +SKIP
        >>> generate(network, batch, num_beams=10, prefix_allowed_tokens_fn=trie.prefix_allowed_tokens_fn(start))  # doctest: +SKIP
    """
    encoded, mask = network.encode(batch)
    return network.backbone.generate(encoder_outputs=encoded, attention_mask=mask, **generate_options)


def item_targets(encoder, n_items: int) -> list[list[int]]:
    """Target token ids (id tokens + ``</s>``) of every item, from a :class:`PromptEncoder`."""
    return [encoder.item_target(item) for item in range(n_items)]


def decoded_items(trie: ItemTrie, sequences: torch.Tensor, decoder_start_token_id: int = 0) -> np.ndarray:
    """Item per generated sequence (``generate`` output), -1 where a sequence names no item."""
    out = []
    for sequence in sequences.tolist():
        if sequence and sequence[0] == decoder_start_token_id:
            sequence = sequence[1:]
        item = trie.item_of(sequence)
        out.append(-1 if item is None else item)
    return np.asarray(out, dtype=np.int64)
