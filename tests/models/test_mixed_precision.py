"""Mixed precision on CUDA's autocast rules, emulated on CPU, and bf16-mixed training steps.

CUDA autocast runs ``layer_norm`` in fp32 and ``linear`` in the autocast dtype; CPU autocast
keeps LayerNorm in bf16, so without emulation no CPU test sees what a GPU run sees: QK-normed
q and k in fp32 beside a bf16 v. ``cuda_autocast_rules`` makes CPU autocast follow CUDA's rule
for LayerNorm (its output in fp32); Linear stays in bf16 as on CUDA.
"""

import flash_sigmoid
import pytest
import torch
import torch.nn.functional as F

from ssl_suite.config import load_config
from ssl_suite.methods import IJEPA, MAE, build_method
from ssl_suite.models import attention as attention_module
from ssl_suite.train import pretrain
from tests.conftest import TINY_OBJECTIVES as OBJECTIVES


@pytest.fixture
def cuda_autocast_rules(monkeypatch):
    layer_norm = F.layer_norm

    def fp32_layer_norm(x, shape, weight=None, bias=None, eps=1e-5):
        if not torch.is_autocast_enabled("cpu"):
            return layer_norm(x, shape, weight, bias, eps)
        with torch.autocast("cpu", enabled=False):  # CUDA's fp32 list: inputs upcast, output fp32
            return layer_norm(
                x.float(),
                shape,
                None if weight is None else weight.float(),
                None if bias is None else bias.float(),
                eps,
            )

    monkeypatch.setattr(F, "layer_norm", fp32_layer_norm)
    seen = []  # the dtypes q, k, v reach the attention with
    original = flash_sigmoid.sigmoid_attention

    def spy(q, k, v, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return original(q, k, v, **kwargs)

    monkeypatch.setattr(attention_module.flash_sigmoid, "sigmoid_attention", spy)
    return seen


def test_the_emulation_reproduces_cuda_dtypes(cuda_autocast_rules):
    x = torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.nn.LayerNorm(8)(x).dtype == torch.float32
        assert torch.nn.Linear(8, 8)(x).dtype == torch.bfloat16


def _ssl_method(name):
    small = [
        "model.name=vit_nano_patch4_28_sigmoid",
        "data.num_views=1",
        "method.decoder_dim=32",
        "method.decoder_depth=2",
        "method.decoder_heads=2",
    ]
    torch.manual_seed(0)
    return build_method(load_config(None, [f"method.name={name}", *small]), num_classes=10)


def _vit(images):
    method = _ssl_method("mae")
    return method.backbone, lambda: method.backbone(images)


def _mae_decoder(images):
    mae = _ssl_method("mae")
    assert isinstance(mae, MAE)
    mask = mae.draw_mask(images)
    return mae, lambda: mae.forward_decoder(mae.forward_encoder(images, mask.keep), mask.keep, mask.masked)


def _ijepa_predictor(images):
    from ssl_suite.methods.masking import multiblock_masks, with_prefix

    ijepa = _ssl_method("ijepa")
    assert isinstance(ijepa, IJEPA)
    masks = multiblock_masks(len(images), ijepa.grid, **ijepa.mask_args)
    context_idx = with_prefix(masks.context, ijepa.num_prefix)
    targets = [idx + ijepa.num_prefix for idx in masks.targets]
    return ijepa, lambda: ijepa.predictor(ijepa.encoder.encode(images, idx_keep=context_idx), context_idx, targets)


@pytest.mark.parametrize("build", [_vit, _mae_decoder, _ijepa_predictor], ids=["vit", "mae_decoder", "ijepa_predictor"])
def test_forward_and_backward_under_cuda_autocast_rules(build, cuda_autocast_rules):
    torch.manual_seed(1)
    images = torch.randn(3, 3, 28, 28)
    module, run = build(images)
    torch.manual_seed(2)
    exact = run().float()  # fp32 without autocast: the oracle
    cuda_autocast_rules.clear()
    torch.manual_seed(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run()
    # The attention was handed fp32 q, k (QK-norm) beside a bf16 v, and coped.
    assert (torch.float32, torch.float32, torch.bfloat16) in cuda_autocast_rules
    out.float().square().mean().backward()
    trained = [p for p in module.parameters() if p.requires_grad and p.grad is not None]
    assert trained and all(torch.isfinite(p.grad).all() for p in trained)
    assert all(p.grad.dtype == p.dtype == torch.float32 for p in trained)  # fp32 master weights
    # bf16 keeps ~3 significant digits: the result stays within a few percent of fp32's.
    assert (out.float() - exact).norm() / exact.norm() < 0.05


def test_mixed_dtypes_outside_autocast_stay_one_error():
    q = k = torch.randn(1, 1, 4, 8)
    with pytest.raises(ValueError, match="dtypes differ"):
        flash_sigmoid.sigmoid_attention(q, k, k.bfloat16())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_custom_op_casts_to_the_active_autocast_dtype(dtype):
    q, k, v = torch.randn(3, 1, 2, 5, 8).unbind(0)
    with torch.autocast("cpu", dtype=dtype):
        out, _ = torch.ops.flash_sigmoid.attn_fwd(q, k, v.bfloat16(), 0.35, -1.6, "cpu", False)
    assert out.dtype == dtype
    expected = flash_sigmoid.reference.sigmoid_attention(
        q.to(dtype).double(), k.to(dtype).double(), v.to(dtype).double(), bias=-1.6, scale=0.35
    )
    torch.testing.assert_close(out.double(), expected, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_bf16_mixed_training_step_of_each_objective(objective, cuda_autocast_rules, fake_fashion_mnist, tmp_path):
    cfg = load_config(
        "configs/demo.yaml",
        [
            "trainer.accelerator=cpu",
            "trainer.precision=bf16-mixed",
            "data.num_workers=0",
            "data.batch_size=8",
            "data.augment_on=device",
            "model.name=vit_nano_patch4_28_sigmoid",
            "trainer.max_steps=2",
            "trainer.max_epochs=1",
            "method.proj_output_dim=32",
            f"data.root={fake_fashion_mnist}",
            f"output_dir={tmp_path}",
            *OBJECTIVES[objective],
        ],
    )
    last = pretrain(cfg, limit_val_batches=1)
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert (torch.float32, torch.float32, torch.bfloat16) in cuda_autocast_rules  # CUDA's mix reached the kernel
    weights = {k: v for k, v in state["state_dict"].items() if v.is_floating_point()}
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())
