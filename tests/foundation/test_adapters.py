"""Tuning modes: which parameters train, and that only those change after a step."""
from __future__ import annotations

import pytest
import torch

from prismrec.foundation.adapters import BottleneckAdapter, TuningConfig, prepare_tuning
from prismrec.foundation.backbone import build_t5
from prismrec.foundation.model import FoundationModel
from prismrec.foundation.prompts import ItemSlot
from foundation_parts import make_encoder, make_network
from foundation_parts import image_features, item_index, one_thread, tokenizer  # noqa: F401 (fixtures)


def one_step(network, encoder):
    batch = encoder.collate([encoder.source(["user 1 bought ", ItemSlot(2), " , ", ItemSlot(5)])],
                            [encoder.item_target(7)])
    before = {name: p.detach().clone() for name, p in network.named_parameters()}
    optimizer = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=0.01)
    network.loss(batch).backward()
    optimizer.step()
    return {name for name, p in network.named_parameters() if not torch.equal(before[name], p.detach())}, before


def item_rows(tokenizer, item_index):
    return tokenizer.convert_tokens_to_ids(item_index.vocabulary())


@pytest.mark.parametrize("mode, backbone_marker", [("adapters", ("adapter_", "layer_norm")), ("lora", ("lora_",)),
                                                   ("prompt", ())])
def test_only_the_tuned_parameters_change_after_a_step(mode, backbone_marker, tokenizer, item_index):
    network = make_network(tokenizer)
    rows = item_rows(tokenizer, item_index)
    info = prepare_tuning(network, TuningConfig(mode, reduction=4), rows)
    assert 0 < info["trainable_parameters"] < info["total_parameters"]
    changed, before = one_step(network, make_encoder(tokenizer, item_index))
    embedding = "backbone.shared.weight"
    for name in changed - {embedding}:
        inside_backbone = name.startswith("backbone.")
        assert not inside_backbone or any(marker in name for marker in backbone_marker), name
    assert any(name.startswith("backbone.") for name in changed - {embedding}) == bool(backbone_marker)
    if mode == "prompt":
        assert any(name.startswith("prompt_embedding.") for name in changed)
    assert any(name.startswith("whole_word") for name in changed)
    # the shared embedding moved only in the item-token rows
    moved = (network.backbone.shared.weight.detach() != before[embedding]).any(1)
    assert set(torch.nonzero(moved).ravel().tolist()) <= set(rows) and moved.any()


def test_full_fine_tuning_changes_the_backbone(tokenizer, item_index):
    network = make_network(tokenizer)
    info = prepare_tuning(network, TuningConfig("full"), item_rows(tokenizer, item_index))
    assert info["trainable_share"] == 1.0
    changed, _ = one_step(network, make_encoder(tokenizer, item_index))
    assert any("SelfAttention.q" in name for name in changed)


def test_adapters_sit_in_self_attention_cross_attention_and_feed_forward_of_every_block():
    network = FoundationModel(build_t5("small", vocab_size=3000))
    info = prepare_tuning(network, TuningConfig("adapters", reduction=8), list(range(4, 900)))
    t5 = network.backbone
    encoder_layers = [sub for block in t5.encoder.block for sub in block.layer]
    decoder_layers = [sub for block in t5.decoder.block for sub in block.layer]
    assert all(isinstance(getattr(s, "SelfAttention", getattr(s, "DenseReluDense", None)), BottleneckAdapter)
               for s in encoder_layers)
    assert sum(isinstance(getattr(s, "EncDecAttention", None), BottleneckAdapter) for s in decoder_layers) == 4
    assert t5.encoder.block[0].layer[0].SelfAttention.adapter_down.out_features == 256 // 8
    assert info["trainable_share"] < 0.10  # under 10% of the parameters train


def test_bad_tuning_settings_are_named():
    with pytest.raises(ValueError, match="unknown tuning mode 'bitfit'"):
        TuningConfig("bitfit")
    with pytest.raises(ValueError, match="must be positive"):
        TuningConfig("adapters", reduction=0)



def test_the_item_row_gradient_mask_follows_the_gradient_to_another_device(tokenizer, item_index):
    """``prepare_tuning`` runs before ``network.to(device)``, so the row mask of the shared
    embedding's gradient was left on the CPU: on CUDA the backward would fail with tensors on two
    devices. A 'meta' gradient stands in for the accelerator's here."""
    network = make_network(tokenizer)
    prepare_tuning(network, TuningConfig("adapters"), item_rows(tokenizer, item_index))
    weight = network.backbone.get_input_embeddings().weight
    grad = torch.ones_like(weight, device="meta")
    for hook in weight._backward_hooks.values():
        grad = hook(grad)
    assert grad.device.type == "meta" and grad.shape == weight.shape
