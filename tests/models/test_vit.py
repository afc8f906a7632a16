import timm
import torch

import ssl_suite  # noqa: F401  registers the names
from ssl_suite.models import MODEL_NAMES, SigmoidAttention


def test_names_registered_with_timm():
    listed = set(timm.list_models("*_sigmoid"))
    assert set(MODEL_NAMES) <= listed
    for size in ("tiny", "small", "base"):
        assert f"vit_{size}_patch16_224_sigmoid" in listed
    assert any("patch4_28" in n for n in listed) and any("patch4_32" in n for n in listed)


def test_small_image_variants_build_and_run():
    for name in [n for n in MODEL_NAMES if "_224_" not in n]:
        model = timm.create_model(name, num_classes=10).eval()
        size = model.default_cfg["input_size"][-1]
        assert model(torch.randn(2, 3, size, size)).shape == (2, 10)
        attn = [m for m in model.modules() if isinstance(m, SigmoidAttention)]
        assert len(attn) == len(model.blocks) and all(a.attention == "sigmoid" for a in attn)
        assert not isinstance(attn[0].q_norm, torch.nn.Identity), "QK-norm on by default"
        assert model.blocks[0].ls1.gamma is not None, "LayerScale on by default"


def test_state_dict_loads_strictly_into_stock_timm_and_matches_in_softmax_mode():
    ours = timm.create_model("vit_small_patch16_224_sigmoid", attention="softmax", depth=2, num_classes=1000).eval()
    stock = timm.create_model("vit_small_patch16_224", pretrained=False, qk_norm=True, init_values=1e-4, depth=2).eval()
    stock.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(stock(x), ours(x), rtol=1e-4, atol=1e-5)


def test_imagenet_names_build_with_their_shapes():
    widths = {"tiny": 192, "small": 384, "base": 768}
    for size, dim in widths.items():
        model = timm.create_model(f"vit_{size}_patch16_224_sigmoid", depth=1, num_classes=0)
        assert model.embed_dim == dim and model.patch_embed.patch_size == (16, 16)
