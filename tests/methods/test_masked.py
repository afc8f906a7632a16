"""MAE and I-JEPA: the loss against a direct computation, the keys sigmoid attention sees, the
suite's attention in every block, the I-JEPA target as a gradient-free EMA, reconstructions."""

import math

import flash_sigmoid
import pytest
import pytorch_lightning as pl
import torch
from flash_sigmoid import reference
from timm.models.vision_transformer import Block

from ssl_suite.config import load_config
from ssl_suite.ema import EMATarget
from ssl_suite.errors import UserError
from ssl_suite.methods import build_method
from ssl_suite.methods.mae import mae_loss
from ssl_suite.methods.masking import random_masking
from ssl_suite.models import SigmoidAttention
from ssl_suite.train import pretrain

SMALL = [
    "model.name=vit_nano_patch4_28_sigmoid",
    "data.num_views=1",
    "method.decoder_dim=32",
    "method.decoder_depth=2",
    "method.decoder_heads=2",
]


def method(name, *extra):
    return build_method(load_config(None, [f"method.name={name}", *SMALL, *extra]), num_classes=10)


def test_mae_loss_is_mse_on_hidden_normalised_patches():
    torch.manual_seed(0)
    images, p = torch.randn(2, 3, 8, 8), 4  # 2 x 2 patches of 4 x 4 x 3 pixels
    masked = torch.tensor([[0, 3], [2, 1]])
    pred = torch.randn(2, 2, 48)
    expected = []
    for b in range(2):
        for j, idx in enumerate(masked[b].tolist()):
            r, c = divmod(idx, 2)
            patch = (
                images[b, :, r * p : (r + 1) * p, c * p : (c + 1) * p].permute(1, 2, 0).reshape(-1)
            )  # (row, col, ch)
            target = (patch - patch.mean()) / (patch.var() + 1e-6).sqrt()
            expected.append(((pred[b, j] - target) ** 2).mean())
    torch.testing.assert_close(mae_loss(pred, images, masked, p), torch.stack(expected).mean())
    raw = torch.stack(
        [
            (
                (
                    pred[b, j]
                    - images[b, :, (i // 2) * p : (i // 2 + 1) * p, (i % 2) * p : (i % 2 + 1) * p]
                    .permute(1, 2, 0)
                    .reshape(-1)
                )
                ** 2
            ).mean()
            for b in range(2)
            for j, i in enumerate(masked[b].tolist())
        ]
    ).mean()
    torch.testing.assert_close(mae_loss(pred, images, masked, p, norm_pix=False), raw)


def test_mae_loss_ignores_visible_patches():
    torch.manual_seed(1)
    images, masked = torch.randn(1, 3, 8, 8), torch.tensor([[1, 2]])  # patches 0 and 3 are visible
    pred = torch.randn(1, 2, 48)
    before = mae_loss(pred, images, masked, 4)
    changed = images.clone()
    changed[..., :4, :4] = 7.0  # patch 0
    changed[..., 4:, 4:] = -3.0  # patch 3
    torch.testing.assert_close(mae_loss(pred, changed, masked, 4), before)
    changed[..., :4, 4:] += torch.randn(3, 4, 4)  # patch 1 is hidden: the loss must move
    assert not torch.allclose(mae_loss(pred, changed, masked, 4), before)


def record_keys(monkeypatch):
    """Wrap the sigmoid kernel: record each call's number of keys and check its output against
    the reference with the bias written out as -log(n_keys)."""
    calls, original = [], flash_sigmoid.sigmoid_attention

    def wrapped(q, k, v, bias=None, scale=None, **kwargs):
        out = original(q, k, v, bias=bias, scale=scale, **kwargs)
        n = k.shape[-2]
        explicit = reference.sigmoid_attention(q, k, v, bias=-math.log(n), scale=scale)
        calls.append((n, bias is None and torch.allclose(out, explicit, atol=1e-5)))
        return out

    monkeypatch.setattr(flash_sigmoid, "sigmoid_attention", wrapped)
    return calls


def test_mae_encoder_attention_sees_visible_keys_only(monkeypatch):
    mae = method("mae", "method.mask_ratio=0.75")
    calls = record_keys(monkeypatch)
    images = torch.randn(2, 3, 28, 28)
    mask = random_masking(2, 49, 0.75)
    tokens = mae.forward_encoder(images, mask.keep)
    assert tokens.shape[1] == 1 + 12  # class token + round(49 / 4) visible patches
    assert calls == [(13, True)] * 6  # 6 encoder blocks, bias -log(13)
    calls.clear()
    mae.forward_decoder(tokens, mask.keep, mask.masked)
    assert calls == [(50, True)] * 2  # the decoder sees every position


def test_ijepa_context_encoder_and_predictor_bias_follow_their_key_counts(monkeypatch):
    ijepa = method("ijepa", "method.target_scale=[0.1,0.15]")
    calls = record_keys(monkeypatch)
    from ssl_suite.methods.masking import multiblock_masks, with_prefix

    masks = multiblock_masks(2, (7, 7), target_scale=(0.1, 0.15))
    context_idx = with_prefix(masks.context)
    target_idx = [t + 1 for t in masks.targets]
    context = ijepa.encoder.encode(torch.randn(2, 3, 28, 28), idx_keep=context_idx)
    ijepa.predictor(context, context_idx, target_idx)
    n_context, n_target = context_idx.shape[1], masks.targets[0].shape[1]
    assert calls == [(n_context, True)] * 6 + [(n_context + n_target, True)] * 2


@pytest.mark.parametrize("attention", ["sigmoid", "softmax"])
@pytest.mark.parametrize("name", ["mae", "ijepa"])
def test_every_block_uses_the_suite_attention(name, attention):
    model = method(name, f"model.attention={attention}")
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    encoders = 2 if name == "ijepa" else 1  # I-JEPA: context encoder + EMA target encoder
    assert len(blocks) == 6 * encoders + 2
    for block in blocks:
        assert isinstance(block.attn, SigmoidAttention) and block.attn.attention == attention
    assert not any(type(m).__name__ == "Attention" for m in model.modules())  # no stock timm layer left


def test_image_size_not_divisible_by_patch_is_a_clear_error():
    with pytest.raises(UserError, match=r"data.image_size=30 is not divisible by the patch size 4") as err:
        method("mae", "data.image_size=30")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"data.image_size=32 but vit_nano_patch4_28_sigmoid takes 28 px"):
        method("ijepa", "data.image_size=32")


def test_ijepa_targets_are_layer_normed_without_affine():
    ijepa = method("ijepa")
    targets = ijepa.targets(torch.randn(2, 3, 28, 28), [torch.tensor([[1, 2, 3], [4, 5, 6]])])
    assert targets.shape == (2, 3, 128)
    torch.testing.assert_close(targets.mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(targets.var(-1, unbiased=False), torch.ones(2, 3), atol=1e-3, rtol=0)


class CheckTarget(pl.Callback):
    """Before each optimizer step: the target has no gradient, the online encoder has. After it:
    target == m * target_before + (1 - m) * online_after, m the momentum the EMA was given."""

    def __init__(self, momenta):
        self.momenta, self.steps = momenta, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.before = [p.detach().clone() for p in module.target.parameters()]

    def on_before_optimizer_step(self, trainer, module, optimizer):
        assert all(p.grad is None and not p.requires_grad for p in module.target.parameters())
        assert module.encoder.vit.blocks[0].attn.qkv.weight.grad is not None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        m = self.momenta[-1]
        for before, target, online in zip(self.before, module.target.model.parameters(), module.encoder.parameters()):
            torch.testing.assert_close(target, m * before + (1 - m) * online, atol=1e-6, rtol=1e-5)
        self.steps += 1


def test_ijepa_target_encoder_is_a_gradient_free_ema(fake_fashion_mnist, tmp_path, monkeypatch):
    momenta, original = [], EMATarget.update

    def update(self, online, momentum):
        momenta.append(momentum)
        original(self, online, momentum)

    monkeypatch.setattr(EMATarget, "update", update)
    cfg = load_config(
        None,
        [
            "method.name=ijepa",
            *SMALL,
            "trainer.accelerator=cpu",
            "data.num_workers=0",
            f"data.root={fake_fashion_mnist}",
            f"output_dir={tmp_path}",
            "data.batch_size=16",
            "optim.base_batch_size=16",
            "trainer.max_steps=3",
            "method.momentum_base=0.9",
            "method.target_scale=[0.1,0.15]",
        ],
    )
    check = CheckTarget(momenta)
    pretrain(cfg, callbacks=[check], limit_val_batches=1)
    assert check.steps == 3
    # Linear schedule 0.9 -> 1 over the run's 3 steps (kappa 1), at the samples seen before each update.
    assert momenta == pytest.approx([0.9 + 0.1 * i / 3 for i in range(3)])


def test_mae_run_logs_reconstructions_to_tensorboard(fake_fashion_mnist, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(
        None,
        [
            "method.name=mae",
            *SMALL,
            "trainer.accelerator=cpu",
            "data.num_workers=0",
            f"data.root={fake_fashion_mnist}",
            f"output_dir={tmp_path}",
            "data.batch_size=16",
            "trainer.max_epochs=1",
        ],
    )
    pretrain(cfg, limit_val_batches=1)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    image = events.Images("mae/reconstructions")[-1]
    assert (image.height, image.width) == (3 * 29 + 1, 8 * 29 + 1)  # originals, masked, filled x 8 images
