"""The registered sigmoid ViTs behave as timm's own models do under the checks timm's model
tests make (huggingface/pytorch-image-models tests/test_models.py: forward, backward with a new
head at the default-cfg input size, default cfgs, forward_features, forward_intermediates),
written here for the suite's names."""

import pytest
import timm
import torch

import ssl_suite.models  # noqa: F401  (registers the names)
from ssl_suite.models import MODEL_NAMES

STOCK_FIELDS = set(timm.create_model("vit_tiny_patch16_224", pretrained=False).pretrained_cfg) - {
    "hf_hub_id",
    "tag",
}  # where a stock checkpoint lives: ours are local files


def input_size(model):
    cfg = model.pretrained_cfg
    assert cfg["fixed_input_size"]  # learned position table: timm's tests must use this exact size
    return cfg["input_size"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_cfg_carries_timms_fields_and_names_real_parameters(name):
    model = timm.create_model(name, pretrained=False)
    cfg, state = model.pretrained_cfg, model.state_dict()
    assert STOCK_FIELDS <= set(cfg), sorted(STOCK_FIELDS - set(cfg))
    assert cfg["architecture"] == name and cfg["num_classes"] == 0  # headless SSL backbones
    assert cfg["first_conv"] + ".weight" in state
    with_head = timm.create_model(name, pretrained=False, num_classes=5)
    assert cfg["classifier"] + ".weight" in with_head.state_dict()
    assert cfg["input_size"][1] == model.patch_embed.img_size[0]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backward_with_a_new_head_at_the_default_input_size(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=42).train()
    out = model(torch.randn(2, *input_size(model)))
    assert out.shape == (2, 42) and torch.isfinite(out).all()
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if "base" not in n])  # ViT-B: same code, 4x the time
def test_forward_features_classifier_reset_and_intermediates(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=7).eval()
    x = torch.randn(1, *input_size(model))
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (1, model.patch_embed.num_patches + model.num_prefix_tokens, model.num_features)
        model.reset_classifier(0)
        pooled = model(x)
        assert pooled.shape == (1, model.num_features)
        torch.testing.assert_close(pooled, model.forward_head(features))
        headless = timm.create_model(name, pretrained=False, num_classes=0).eval()
        assert headless(x).shape == (1, headless.num_features)
        final, intermediates = model.forward_intermediates(x)
        torch.testing.assert_close(final, features)
        grid = model.patch_embed.grid_size
        assert len(intermediates) == len(model.blocks)
        assert all(t.shape == (1, model.embed_dim, *grid) for t in intermediates)
