"""Frozen extraction: pooling vs hand computation on a tiny timm ViT, eval mode, caching."""

import hashlib

import pytest
import timm
import torch
from torch.utils.data import TensorDataset

from ssl_suite.eval.features import cache_file, extract_features, file_sha256, pool_features


def tiny_vit(**kw):
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, depth=3, pretrained=False, num_classes=0, **kw
    )


def hand_tokens(model, x):
    """Block-by-block forward (independent of forward_features); returns each block's output."""
    h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    outs = []
    for blk in model.blocks:
        h = blk(h)
        outs.append(h)
    return outs


@pytest.fixture(scope="module")
def images():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_pooling_matches_hand_computation(images):
    model = tiny_vit(reg_tokens=2).eval()  # 1 class + 2 register tokens: avg must skip all 3
    assert model.num_prefix_tokens == 3
    with torch.no_grad():
        outs = hand_tokens(model, images)
        final = model.norm(outs[-1])
        torch.testing.assert_close(pool_features(model, images, "cls"), final[:, 0])
        torch.testing.assert_close(pool_features(model, images, "avg"), final[:, 3:].mean(1))
        want = torch.cat([model.norm(o)[:, 0] for o in outs[-2:]], dim=-1)
        torch.testing.assert_close(pool_features(model, images, "cls_last:2"), want)
        torch.testing.assert_close(pool_features(model, images, "cls_last:1"), final[:, 0])
        # timm's own intermediates API agrees (norm=True applies the final norm to each block).
        inter = model.forward_intermediates(
            images, indices=2, norm=True, return_prefix_tokens=True, output_fmt="NLC", intermediates_only=True
        )
        torch.testing.assert_close(
            pool_features(model, images, "cls_last:2"), torch.cat([p[:, 0] for _, p in inter], dim=-1)
        )
    assert pool_features(model, images, "cls_last:3").shape == (4, 3 * model.embed_dim)


def test_pooling_bad_inputs(images):
    model = tiny_vit().eval()
    for bad in ("mean", "cls_last", "cls_last:x", "CLS"):
        with pytest.raises(ValueError, match="valid: cls, avg, cls_last:K"):
            pool_features(model, images, bad)
    for k in (0, 4):
        with pytest.raises(ValueError, match="1 <= K <= number of blocks"):
            pool_features(model, images, f"cls_last:{k}")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        pool_features(model, images[0], "cls")
    no_cls = tiny_vit(class_token=False, global_pool="avg").eval()
    with pytest.raises(ValueError, match="needs a class token"):
        pool_features(no_cls, images, "cls")
    assert pool_features(no_cls, images, "avg").shape == (4, no_cls.embed_dim)


class CountingModel(torch.nn.Module):
    """Tiny ViT with dropout everywhere; counts forward_features calls."""

    def __init__(self):
        super().__init__()
        self.vit = tiny_vit(proj_drop_rate=0.5, attn_drop_rate=0.5, pos_drop_rate=0.5)
        self.num_prefix_tokens, self.has_class_token = 1, True
        self.blocks, self.norm = self.vit.blocks, self.vit.norm
        self.calls = 0

    def forward_features(self, x):
        self.calls += 1
        return self.vit.forward_features(x)


def dataset(n=10):
    g = torch.Generator().manual_seed(2)
    return TensorDataset(torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 3)


def test_extraction_is_frozen_and_restores_mode():
    model, ds = CountingModel(), dataset()
    model.train()
    with torch.no_grad():  # the model really is stochastic in train mode
        assert not torch.equal(model.forward_features(ds.tensors[0][:2]), model.forward_features(ds.tensors[0][:2]))
    f1, y1 = extract_features(model, ds, batch_size=4, progress=False)
    assert model.training and all(m.training for m in model.modules())
    f2, _ = extract_features(model, ds, batch_size=3, progress=False)
    assert torch.equal(f1, f2)
    assert f1.shape == (10, model.vit.embed_dim) and f1.dtype == torch.float32 and f1.device.type == "cpu"
    assert y1.dtype == torch.int64 and torch.equal(y1, torch.arange(10) % 3)
    model.eval()
    extract_features(model, ds, progress=False)
    assert not model.training
    model.train()
    model.vit.blocks[0].eval()  # a submodule frozen in eval mode stays so
    extract_features(model, ds, progress=False)
    assert model.training and not model.vit.blocks[0].training and model.vit.blocks[1].training


def test_cache_reuse_and_invalidation(tmp_path):
    model, ds = CountingModel(), dataset()
    meta = {
        "checkpoint_sha256": "abc",
        "dataset": "synthetic",
        "split": "train",
        "transform": "Identity()",
        "pooling": "cls",
        "model": "vit_tiny",
    }
    path = cache_file(tmp_path, meta)
    f1, y1 = extract_features(model, ds, batch_size=4, cache_path=path, cache_meta=meta, progress=False)
    calls = model.calls
    assert calls == 3 and path.is_file()
    f2, y2 = extract_features(model, ds, batch_size=4, cache_path=path, cache_meta=dict(meta), progress=False)
    assert model.calls == calls and torch.equal(f1, f2) and torch.equal(y1, y2)  # reused, model not called
    # Same file, different meta (e.g. another pooling): recompute and overwrite.
    meta2 = {**meta, "pooling": "avg"}
    f3, _ = extract_features(model, ds, pooling="avg", batch_size=4, cache_path=path, cache_meta=meta2, progress=False)
    assert model.calls == calls + 3 and not torch.equal(f1, f3)
    assert torch.load(path, weights_only=True)["meta"] == meta2
    extract_features(model, ds, pooling="avg", batch_size=4, cache_path=path, cache_meta=meta2, progress=False)
    assert model.calls == calls + 3
    # A corrupt file is recomputed, not trusted; no temporary files are left behind.
    path.write_bytes(b"not a torch file")
    f4, _ = extract_features(model, ds, pooling="avg", batch_size=4, cache_path=path, cache_meta=meta2, progress=False)
    assert torch.equal(f3, f4) and model.calls == calls + 6
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cache_file_names_and_sha256(tmp_path):
    meta = {"split": "train", "pooling": "cls", "ckpt": "abc"}
    assert cache_file(tmp_path, meta) == cache_file(tmp_path, dict(reversed(meta.items())))
    assert cache_file(tmp_path, meta) != cache_file(tmp_path, {**meta, "split": "val"})
    blob = bytes(range(256)) * 1000
    (tmp_path / "ckpt.bin").write_bytes(blob)
    assert file_sha256(tmp_path / "ckpt.bin", chunk_size=999) == hashlib.sha256(blob).hexdigest()


def test_extraction_bad_inputs(tmp_path):
    model, ds = CountingModel(), dataset()
    with pytest.raises(ValueError, match="cache_meta"):
        extract_features(model, ds, cache_path=tmp_path / "x.pt", progress=False)
    with pytest.raises(ValueError, match="unknown pooling"):
        extract_features(model, ds, pooling="max", progress=False)
    with pytest.raises(ValueError, match="JSON"):
        cache_file(tmp_path, {"transform": object()})
    with pytest.raises(ValueError, match="empty"):
        extract_features(model, dataset(0), progress=False)
    assert model.calls == 0


def test_cache_from_another_backbone_is_a_clear_error(tmp_path):
    model, ds = CountingModel(), dataset()
    meta = {"weights": "sha-A", "model": "vit_tiny", "split": "train", "pooling": "cls"}
    path = cache_file(tmp_path, meta)
    extract_features(model, ds, batch_size=4, cache_path=path, cache_meta=meta, progress=False)
    with pytest.raises(ValueError, match=r"made by another backbone \(\{'weights': 'sha-A'\}\)"):
        extract_features(
            model, ds, batch_size=4, cache_path=path, cache_meta={**meta, "weights": "sha-B"}, progress=False
        )
