"""The VIP5-style foundation model as a Recommender: sequential recommendation by generation.

``score`` ranks items by the log-likelihood of their id tokens under a sequential prompt,
from a beam search over the trie of valid ids (``beam_size=0``: every item scored
exactly); items outside the beam get a floor score. ``validation_users`` caps the users
early stopping evaluates (0: all). ``positions_per_user`` caps the training examples
each user gives per epoch (a fresh random draw every epoch; ``None``: every position).
``direct_share`` of the training examples are direct
prompts (candidates listed, see :mod:`prismrec.foundation.direct`). The network lives in
:mod:`prismrec.foundation`; this wrapper builds ids, tokenizer and network in ``fit`` and
publishes the weights, tokenizer and ids as ``_`` attributes that ``save`` writes.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from prismrec.data.sequences import user_sequences
from prismrec.models.base import Recommender
from prismrec.models.sequential import SequentialHistory, flatten_state, unflatten_state
from prismrec.models.training import EarlyStopping


class FoundationRecommender(SequentialHistory, Recommender):
    """T5 + item id tokens (+ image tokens) trained on personalised sequential prompts.

    Example:
        >>> model = FoundationRecommender(preset="tiny", id_scheme="collaborative", epochs=2)  # doctest: +SKIP
        >>> model.fit(split.train, split.valid).score([0, 1]).shape  # doctest: +SKIP
        torch.Size([2, 40])
    """

    def __init__(self, *, preset: str = "small", pretrained: str | None = None, allow_download: bool = False,
                 id_scheme: str = "collaborative", id_base: int = 64, n_clusters: int = 32, leaf_size: int = 64,
                 semantic_levels: int = 3, codebook_size: int = 256, content_feature: str = "text",
                 image_feature: str | None = None, n_image_tokens: int = 2, tuning: str = "full",
                 adapter_reduction: int = 8, lora_rank: int = 8, n_virtual_tokens: int = 20,
                 max_history: int = 20, max_length: int = 256, tokenizer_vocab: int = 2000, dropout: float = 0.1,
                 epochs: int = 10, batch_size: int = 64, learning_rate: float = 1e-3, patience: int = 3,
                 early_stopping_metric: str = "ndcg@10", validation_users: int = 2000,
                 beam_size: int = 20, eval_template: str = "sequential-1", score_batch_size: int = 64,
                 direct_share: float = 0.0, direct_candidates: int = 20, positions_per_user: int | None = None,
                 checkpoint_dir: str | None = None, seed: int = 0, device: str = "auto") -> None:
        self.preset, self.pretrained, self.allow_download = preset, pretrained, allow_download
        self.id_scheme, self.id_base, self.n_clusters, self.leaf_size = id_scheme, id_base, n_clusters, leaf_size
        self.semantic_levels, self.codebook_size, self.content_feature = semantic_levels, codebook_size, content_feature
        self.image_feature, self.n_image_tokens, self.tuning = image_feature, n_image_tokens, tuning
        self.adapter_reduction, self.lora_rank, self.n_virtual_tokens = adapter_reduction, lora_rank, n_virtual_tokens
        self.max_history, self.max_length, self.tokenizer_vocab = max_history, max_length, tokenizer_vocab
        self.dropout, self.epochs, self.batch_size, self.learning_rate = dropout, epochs, batch_size, learning_rate
        self.patience, self.early_stopping_metric = patience, early_stopping_metric
        self.validation_users, self.beam_size, self.eval_template = validation_users, beam_size, eval_template
        self.score_batch_size, self.checkpoint_dir, self.seed, self.device = score_batch_size, checkpoint_dir, seed, device
        self.direct_share, self.direct_candidates = direct_share, direct_candidates
        self.positions_per_user = positions_per_user

    def required_features_for_fit(self) -> tuple[str, ...]:
        needed = (self.content_feature,) if self.id_scheme == "semantic" else ()
        return needed + ((self.image_feature,) if self.image_feature else ())

    # ------------------------------------------------------------------ fitting
    def _fit(self, train, valid, item_features, progress) -> None:
        from prismrec.foundation.adapters import TuningConfig, optimiser_parameters, prepare_tuning
        from prismrec.foundation.item_ids import build_item_index
        from prismrec.foundation.trainer import load_checkpoint, save_checkpoint, train_one_epoch

        sequences = user_sequences(train)
        index = build_item_index(
            self.id_scheme, n_items=train.n_items, sequences=sequences, embeddings=item_features.get(self.content_feature),
            seed=self.seed, base=self.id_base, n_clusters=self.n_clusters, leaf_size=self.leaf_size,
            levels=self.semantic_levels, codebook_size=self.codebook_size)
        self.item_codes_, self.id_scheme_label_ = torch.from_numpy(index.codes), index.label
        self.raw_users_ = [str(u) for u in train.users.raw_ids]
        images = item_features.get(self.image_feature) if self.image_feature else None
        t5, tokenizer = self._backbone(index, sequences)
        self._set_tokenizer_state(tokenizer)
        network = self._network_for(t5, tokenizer, images, index)
        tuning = TuningConfig(self.tuning, self.adapter_reduction, self.lora_rank, self.n_virtual_tokens)
        self.tuning_report_ = prepare_tuning(network, tuning, self._item_token_ids(tokenizer, index))
        device = self._device()
        network.to(device)
        self._attach(network, tokenizer, index, _has_image(images))
        optimizer = torch.optim.Adam(optimiser_parameters(network), lr=self.learning_rate)
        self.use_history(train)
        stopper = EarlyStopping(self, train, self._validation_part(valid), metric=self.early_stopping_metric,
                                patience=self.patience)
        stopper.losses = []
        rng = np.random.default_rng(self.seed)
        checkpoint = Path(self.checkpoint_dir) / "checkpoint.pt" if self.checkpoint_dir else None
        fingerprints = {"tokenizer": self.tokenizer_fingerprint_, "id scheme": index.fingerprint()}
        first = 0
        if checkpoint is not None and checkpoint.is_file():
            first = load_checkpoint(checkpoint, network=network, optimizer=optimizer, stopper=stopper, rng=rng,
                                    fingerprints=fingerprints)
        self.epoch_seconds_, self.epoch_cpu_seconds_ = [], []
        self.memory_at_start_mb_ = _reset_peak_memory(device)
        for epoch in range(first, self.epochs):
            started, started_cpu = time.perf_counter(), time.process_time()
            stopper.losses.append(train_one_epoch(
                network, self._encoder, optimizer, sequences, self.raw_users_, batch_size=self.batch_size,
                max_history=self.max_history, rng=rng, device=device, progress=progress,
                description=f"{type(self).__name__} epoch {epoch + 1}/{self.epochs}",
                direct_share=self.direct_share, direct_candidates=self.direct_candidates,
                positions_per_user=self.positions_per_user))
            self.epoch_seconds_.append(time.perf_counter() - started)
            self.epoch_cpu_seconds_.append(time.process_time() - started_cpu)
            self._publish()
            stop = stopper.step(epoch)
            if checkpoint is not None:
                save_checkpoint(checkpoint, network=network, optimizer=optimizer, epoch=epoch, stopper=stopper,
                                rng=rng, fingerprints=fingerprints)
            if progress:
                self._log_epoch(epoch, stopper)
            if stop:
                break
        network.eval()
        if not hasattr(self, "network_weights_"):
            self._publish()  # resumed after the last epoch: publish the restored network
        stopper.restore_best()
        self.loss_history_ = [float(v) for v in stopper.losses]
        self.peak_memory_mb_ = _peak_memory_mb(device)
        unflatten_state(self._network, self.network_weights_, self.network_layout_)
        self.use_history(*[part for part in (train, valid) if part is not None])

    def _backbone(self, index, sequences):
        from prismrec.foundation.backbone import add_item_tokens, build_t5, load_backbone, train_tokenizer
        from prismrec.foundation.prompts import TEMPLATES, plain_text, render

        if self.pretrained:
            t5, tokenizer = load_backbone(self.pretrained, allow_download=self.allow_download)
            add_item_tokens(tokenizer, t5, index.vocabulary())
            return t5, tokenizer
        users = self.raw_users_[: 5000]
        texts = [plain_text(render(t.source, user=u, history=[0], item=0, candidates=[0], answer="yes"))
                 for t in TEMPLATES for u in users]
        tokenizer = train_tokenizer(texts, index.vocabulary(), vocab_size=self.tokenizer_vocab)
        return build_t5(self.preset, len(tokenizer), dropout=self.dropout), tokenizer

    def _network_for(self, t5, tokenizer, images, index):
        from prismrec.foundation.model import FoundationModel

        self.backbone_config_ = t5.config.to_dict()
        return FoundationModel(t5, item_image_features=images, n_image_tokens=self.n_image_tokens)

    @staticmethod
    def _item_token_ids(tokenizer, index) -> list[int]:
        return tokenizer.convert_tokens_to_ids(index.vocabulary())

    def _set_tokenizer_state(self, tokenizer) -> None:
        from prismrec.foundation.backbone import tokenizer_fingerprint

        self.tokenizer_json_ = tokenizer.backend_tokenizer.to_str()
        self.tokenizer_fingerprint_ = tokenizer_fingerprint(tokenizer)

    def _attach(self, network, tokenizer, index, has_image: np.ndarray | None) -> None:
        """Keep the live network, prompt encoder and trie (private: rebuilt after ``load``)."""
        from prismrec.foundation.decoding import ItemTrie, item_targets
        from prismrec.foundation.tokens import PromptEncoder

        self._network, self._tokenizer = network, tokenizer
        self._encoder = PromptEncoder(tokenizer, index, n_image_tokens=self.n_image_tokens, has_image=has_image,
                                      max_length=self.max_length)
        self._trie = ItemTrie(item_targets(self._encoder, index.n_items), eos_id=tokenizer.eos_token_id,
                              pad_id=tokenizer.pad_token_id)
        self.has_image_ = None if has_image is None else torch.from_numpy(has_image)

    def _publish(self) -> None:
        self.network_weights_, self.network_layout_ = flatten_state(self._network)

    def _validation_part(self, valid):
        if valid is None or self.validation_users <= 0 or len(valid.active_users()) <= self.validation_users:
            return valid
        chosen = np.random.default_rng(self.seed).choice(valid.active_users(), self.validation_users, replace=False)
        return valid.subset(np.isin(valid.user_index, chosen))

    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _log_epoch(self, epoch, stopper) -> None:
        import sys

        checked = f", {self.early_stopping_metric}={stopper.history[-1][1]:.4f}" if stopper.history else ""
        print(f"{type(self).__name__} epoch {epoch + 1}/{self.epochs}: loss={stopper.losses[-1]:.4f}{checked}, "
              f"{self.epoch_seconds_[-1]:.1f} s", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def score(self, user_ids) -> torch.Tensor:
        from prismrec.foundation.decoding import trie_search
        from prismrec.foundation.prompts import template_named
        from prismrec.foundation.trainer import sequential_source

        self._check_fitted()
        self._ensure_network()
        template = template_named(self.eval_template).source
        device = next(self._network.parameters()).device
        user_ids = np.asarray(user_ids, dtype=np.int64)
        out = []
        for start in range(0, len(user_ids), self.score_batch_size):
            users = user_ids[start:start + self.score_batch_size]
            sources = [sequential_source(self._encoder, template, self.raw_users_[u], self.history_of(int(u), self.max_history))
                       for u in users]
            batch = {k: v.to(device) for k, v in self._encoder.collate(sources).items()}
            encoded, mask = self._network.encode(batch)
            out.append(trie_search(self._network, encoded, mask, self._trie, self.n_items_, beam_size=self.beam_size or None,
                                   start_id=self._network.backbone.config.decoder_start_token_id))
        self._encoder.warn_truncated()
        return torch.cat(out) if out else torch.empty((0, self.n_items_))

    def _ensure_network(self) -> None:
        """After ``load``: rebuild tokenizer, ids and network from the published ``_`` state."""
        if getattr(self, "_network", None) is not None:
            return
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

        from prismrec.foundation.adapters import TuningConfig, prepare_tuning
        from prismrec.foundation.backbone import tokenizer_fingerprint
        from prismrec.foundation.item_ids import ItemIndex
        from prismrec.foundation.tokens import IMAGE_TOKEN

        tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(self.tokenizer_json_), pad_token="<pad>",
                                            eos_token="</s>", unk_token="<unk>", additional_special_tokens=[IMAGE_TOKEN])
        if tokenizer_fingerprint(tokenizer) != self.tokenizer_fingerprint_:
            raise ValueError("saved tokenizer does not match its fingerprint; the model folder is damaged")
        index = ItemIndex(self.id_scheme, self.item_codes_.numpy())
        shapes = dict((name, shape) for name, shape in self.network_layout_)
        images = np.zeros(shapes["item_image_features"], np.float32) if "item_image_features" in shapes else None
        t5 = T5ForConditionalGeneration(T5Config.from_dict(self.backbone_config_))
        network = self._network_for(t5, tokenizer, images, index)
        tuning = TuningConfig(self.tuning, self.adapter_reduction, self.lora_rank, self.n_virtual_tokens)
        prepare_tuning(network, tuning, self._item_token_ids(tokenizer, index))
        unflatten_state(network, self.network_weights_, self.network_layout_)
        network.eval()
        self._attach(network, tokenizer, index, None if self.has_image_ is None else self.has_image_.numpy())


def _proc_status_mib(field: str) -> float | None:
    """``field`` of ``/proc/self/status`` (e.g. ``VmRSS``, ``VmHWM``) in MiB; ``None`` without ``/proc``."""
    try:
        with open("/proc/self/status") as handle:
            return next((int(line.split()[1]) / 1024 for line in handle if line.startswith(field + ":")), None)
    except OSError:
        return None


def _reset_peak_memory(device: torch.device) -> float:
    """Start measuring peak memory at the first epoch, so that data loading and id building do not count.

    CUDA: its peak allocation statistics; CPU on Linux: the process's peak RSS (``VmHWM``,
    reset by writing 5 to ``/proc/self/clear_refs``). Elsewhere nothing is reset and the
    peak is the process's since it started (NaN is returned for the memory at start).
    Returns the memory in use now (MiB): what the data, ids and network already hold when
    training starts.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return float("nan")
    in_use = _proc_status_mib("VmRSS")
    return float("nan") if in_use is None else in_use


def _peak_memory_mb(device: torch.device) -> float:
    """Peak memory since :func:`_reset_peak_memory`: CUDA allocations, else peak RSS (``VmHWM``, Linux).

    Without ``/proc`` it is ``ru_maxrss``: the process's peak since it started.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = _proc_status_mib("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _has_image(images) -> np.ndarray | None:
    """Items with a usable image feature: finite and not all zero (a missing image is stored as zeros/NaN)."""
    if images is None:
        return None
    images = np.asarray(images, dtype=np.float64)
    return np.isfinite(images).all(1) & (np.abs(np.nan_to_num(images)).sum(1) > 0)
