"""Fine-tuned text towers: the adapted tower inside ``align`` training, and as an encoder afterwards.

``train_alignment(..., adaptation="lora")`` trains the tower's adapter together with the
alignment heads (contrastive loss); its checkpoint stores only the adapter tensors (plus
the heads). Afterwards the adapted tower is an encoder of its own:

* ``align:<dir>`` restores heads *and* adapted text tower (shared-space vectors);
* ``adapted-text:<dir>`` gives the adapted tower's own sentence vectors (same width as
  the original text encoder), for text features that were fine-tuned in-domain.

Either id hashes the adapter tensors, so the feature store never serves features of other
adapter weights.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from prismrec.adapt.adapters import AdaptationConfig, build_tower
from prismrec.adapt.cached import tower_folder
from prismrec.adapt.text_tower import LowerLayerEncoder
from prismrec.encoders.base import Encoder, hash_state_dict

ADAPTER_FILE_KEY = "text_adapter_file"


class AdaptedTextEncoder(Encoder):
    """A sentence-transformers text encoder whose top layers carry trained adapter tensors.

    Example:
        >>> encoder = create_encoder("adapted-text:runs/align-lora")  # doctest: +SKIP
        >>> encoder.encode(catalog).features.shape  # doctest: +SKIP
        (1682, 384)
    """

    modality = "text"

    def __init__(self, text_encoder, config: AdaptationConfig, adapter_state: dict[str, torch.Tensor], *,
                 seed: int = 0, feature_store: str | Path | None = None, where: str = "adapter weights") -> None:
        self.base, self.adaptation = text_encoder, config
        self.tower = build_tower(tower_folder(text_encoder, f"adaptation {config.adaptation!r}"), config, seed=seed)
        self.tower.load_trainable_state_dict(adapter_state, where)
        self.tower.eval()
        self.lower = LowerLayerEncoder(self.base, self.tower)
        self.name = f"adapted-{self.base.name}"
        self.dim = self.tower.output_dim
        self._hash: str | None = None
        from prismrec.encoders.store import FeatureStore

        self._store = None if feature_store is None else FeatureStore(feature_store)

    def weights_hash(self) -> str:
        if self._hash is None:
            parts = (self.base.weights_hash(), hash_state_dict(self.tower.trainable_state_dict()))
            self._hash = hashlib.sha256("|".join(parts).encode()).hexdigest()
        return self._hash

    def config(self) -> dict:
        return {**self.base.config(), **{f"adapt_{k}": v for k, v in self.adaptation.to_dict().items()}}

    def contents(self, catalog) -> list:
        return self.base.contents(catalog)

    def content_hash(self, content) -> str:
        return self.base.content_hash(content)

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        from prismrec.encoders.store import cached_encode_batch

        if self._store is None:
            flat, errors = self.lower.encode_batch(contents)
        else:  # the frozen lower layers' states are cached under their own id
            flat, errors = cached_encode_batch(self.lower, self._store, contents)
        vectors = np.zeros((len(contents), self.dim), dtype=np.float32)
        rows = [i for i, error in enumerate(errors) if error is None]
        if rows:
            hidden, mask = self.lower.unflatten(np.asarray(flat)[rows])
            with torch.no_grad():
                vectors[rows] = self.tower.top(hidden, mask).numpy()
        return vectors, errors


def adapted_training_tower(text_encoder, catalog, feature_store, adaptation: str, options: dict | None, *,
                           seed: int, progress: bool):
    """``(CachedTextTower, EncodedItems of its initial vectors)`` for alignment training.

    Example:
        >>> tower, text = adapted_training_tower(encoder, catalog, "features", "lora", {"trainable_layers": 1},
        ...                                      seed=0, progress=False)  # doctest: +SKIP
    """
    from prismrec.adapt.cached import CachedTextTower
    from prismrec.encoders.base import EncodedItems

    config = AdaptationConfig.from_options({**(options or {}), "adaptation": adaptation}, "adaptation_options")
    tower = CachedTextTower.from_encoder(text_encoder, catalog, feature_store, config, seed=seed, progress=progress)
    features = tower.encode_all().numpy()
    return tower, EncodedItems(features, tower.has_text.numpy().copy(), {}, f"{text_encoder.id}+{adaptation}")


def load_adapter_file(folder: Path, meta: dict) -> dict[str, torch.Tensor]:
    """The adapter tensors an ``alignment.json`` names (a clear error when the file is missing)."""
    from safetensors.torch import load_file

    adapter_path = folder / str(meta.get(ADAPTER_FILE_KEY, ""))
    if ADAPTER_FILE_KEY not in meta or not adapter_path.is_file():
        raise FileNotFoundError(f"{folder / 'alignment.json'} records an adapted text tower, but its adapter file "
                                f"{meta.get(ADAPTER_FILE_KEY)!r} is missing")
    return load_file(str(adapter_path))


def adapted_text_encoder(text_encoder, meta: dict, folder: Path, *, feature_store=None) -> AdaptedTextEncoder | None:
    """The adapted text tower recorded in an ``align`` checkpoint (``None`` when it has none)."""
    options = meta["config"].get("adaptation")
    if not options or options.get("adaptation", "none") == "none":
        return None
    return AdaptedTextEncoder(text_encoder, AdaptationConfig.from_options(options), load_adapter_file(folder, meta),
                              seed=int(meta["config"].get("seed", 0)), feature_store=feature_store,
                              where=str(folder / meta[ADAPTER_FILE_KEY]))


def adapted_text_from_checkpoint(argument: str | None, *, feature_store: str | None = None) -> AdaptedTextEncoder:
    """The ``adapted-text:<dir>`` encoder: the adapted text tower of an ``align`` checkpoint."""
    from prismrec.encoders.align import create_towers, read_checkpoint

    if not argument:
        raise ValueError("adapted-text needs an align checkpoint folder trained with an adaptation: "
                         "'adapted-text:<checkpoint-dir>'")
    meta, _, folder = read_checkpoint(argument)
    config = meta["config"]
    text_tower, _ = create_towers(config["text_encoder"], config["image_encoder"], config.get("text_template"))
    recorded = meta["towers"]["text"]["weights_hash"]
    if text_tower.weights_hash() != recorded:
        raise ValueError(f"{folder / 'alignment.json'}: trained with text tower {config['text_encoder']!r} weights "
                         f"{recorded[:16]}, but the installed weights hash to {text_tower.weights_hash()[:16]}")
    encoder = adapted_text_encoder(text_tower, meta, folder, feature_store=feature_store)
    if encoder is None:
        raise ValueError(f"{folder / 'alignment.json'}: this alignment trained no text adapter (adaptation 'none'); "
                         "use align:<dir> or the text encoder itself")
    return encoder
