"""VIP5-style generative recommendation: item ids, prompts, image tokens, T5, adapters, decoding.

Modules (see ``docs/foundation.md``): ``item_ids`` (four indexing schemes), ``prompts``
(templates), ``tokens`` (id/image tokens, whole-word ids), ``backbone`` (T5 presets and local
weights), ``model`` (the network), ``adapters`` (tuning modes), ``decoding`` (prefix-trie
constrained search), ``trainer``, ``explanation`` and ``generator`` (explanations),
``decoder_only`` (SmolLM2 + LoRA). The Recommender is :class:`prismrec.models.foundation.FoundationRecommender`.
Nothing is imported here, so ``import prismrec.foundation`` stays cheap.
"""
