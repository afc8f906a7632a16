"""Training-step throughput: the suite's full step (``pretrain`` through Lightning, everything a
user gets switched on: device views, guards, online probe, logging, checkpoint callbacks)
against a plain loop of stock timm + lightly at the same model, batch, views and data loader,
measured in the same run, with a per-part breakdown of both.

    python scripts/bench_train.py                          # every case (~10 min on 2 CPU cores)
    python scripts/bench_train.py --cases demo --compile   # adds the suite with trainer.compile=true
    python scripts/bench_train.py --cases vit_s16 --device cuda --precision bf16-mixed

Cases: ``demo`` (SimCLR, ViT-nano/7, 28 px, batch 256 x 2 views: configs/demo.yaml), ``compare``
(the same at ViT-nano/4, the comparison grid's backbone), ``vit_s16`` (SimCLR, ViT-S/16 at 224 px
on generated JPEGs) and one per objective at the grid's shape (``simclr``, ``polyview``,
``byol``, ``mae``, ``ijepa``). Plain loops exist where lightly ships the objective's parts
(SimCLR, BYOL, MAE); poly-view's loss and I-JEPA's masking have no stock equivalent, so those
rows give the suite's breakdown without a ratio.
Parts (ms per step): data (loader), views (kornia on the batch), forward (+ loss), backward,
optimizer (+ EMA update), other (callbacks, logging, Lightning's loop); ratio = plain loop's step
time / the suite's (above 1: the suite is faster).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import timm
import torch
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models import utils as lightly_utils
from lightly.models.modules import (
    BYOLPredictionHead,
    BYOLProjectionHead,
    MAEDecoderTIMM,
    MaskedVisionTransformerTIMM,
    SimCLRProjectionHead,
)
from lightly.utils.lars import LARS
from PIL import Image
from pytorch_lightning.profilers import SimpleProfiler

from ssl_suite.config import load_config
from ssl_suite.data import device_views, ssl_train_dataset
from ssl_suite.models.vit import LAYER_SCALE_INIT
from ssl_suite.train import loader, pretrain

GRID = ["model.name=vit_nano_patch4_28_sigmoid", "data.augment_on=device", "eval.pooling=avg"]
CASES = {  # name: (config, overrides)
    "demo": ("configs/demo.yaml", []),
    "compare": ("configs/demo.yaml", GRID),
    "vit_s16": ("configs/pretrain/simclr_vit_s16_imagenet.yaml", ["data.batch_size=16", "data.num_workers=1"]),
    "simclr": ("configs/demo.yaml", GRID),
    "polyview": ("configs/pretrain/polyview_vit_nano_fmnist.yaml", GRID),
    "byol": ("configs/pretrain/byol_vit_nano_fmnist.yaml", GRID),
    "mae": ("configs/pretrain/mae_vit_nano_fmnist.yaml", GRID),
    "ijepa": ("configs/pretrain/ijepa_vit_nano_fmnist.yaml", GRID),
}
PARTS = ("data", "views", "forward", "backward", "optimizer", "other")


def jpeg_folder(root: Path, n: int = 64, side: int = 256) -> Path:
    """Random photos-sized JPEGs (ViT-S/16's case reads and decodes real files)."""
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        pixels = torch.randint(0, 256, (side, side, 3), generator=gen, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(root / f"{i:03d}.jpg", quality=90)
    return root


def case_config(name: str, args, out: Path):
    path, overrides = CASES[name]
    extra = [f"output_dir={out / name}", f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}"]
    extra += ["trainer.devices=1", "trainer.num_nodes=1", f"trainer.precision={args.precision}"]
    if name == "vit_s16":
        extra += ["data.dataset=folder", f"data.root={jpeg_folder(out / 'jpegs')}"]
    return load_config(path, [*overrides, *extra])


# -- the suite: pretrain() with Lightning's simple profiler --------------------------------------
def _per_step(durations: dict, key_end: str, skip: int) -> float:
    found = [v for k, v in durations.items() if k.endswith(key_end)]
    return sum(sum(v[skip:]) for v in found)


class Clock(pl.Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.ends.append(time.perf_counter())


def suite_parts(cfg, warm: int, steps: int, compile: bool) -> dict:
    cfg.trainer.compile = compile
    clock = Clock()

    profiler = SimpleProfiler(dirpath=cfg.output_dir, filename="profile")  # its table to a file
    pretrain(cfg, overwrite=True, callbacks=[clock], profiler=profiler, max_steps=warm + steps, limit_val_batches=0)
    d = profiler.recorded_durations
    total = clock.ends[warm + steps - 1] - clock.ends[warm - 1]
    fwd, bwd = _per_step(d, ".training_step", warm), _per_step(d, ".backward", warm)
    parts = {
        "data": _per_step(d, "train_dataloader_next", warm),
        "views": _per_step(d, ".on_after_batch_transfer", warm),
        "forward": fwd,
        "backward": bwd,
        # Lightning runs forward and backward inside optimizer_step (the closure)
        "optimizer": _per_step(d, ".optimizer_step", warm) - fwd - bwd,
    }
    parts["other"] = total - sum(parts.values())
    return {k: v / steps for k, v in parts.items()} | {"step": total / steps}


# -- the plain loop: stock timm + lightly, the same data loader and views -------------------------
def stock_vit(ours) -> torch.nn.Module:
    """timm's own VisionTransformer (softmax, SDPA) with the suite backbone's dimensions."""
    return timm.models.vision_transformer.VisionTransformer(
        img_size=ours.patch_embed.img_size,
        patch_size=ours.patch_embed.patch_size,
        embed_dim=ours.embed_dim,
        depth=len(ours.blocks),
        num_heads=ours.blocks[0].attn.num_heads,
        qk_norm=True,
        init_values=LAYER_SCALE_INIT,
        num_classes=0,
        global_pool=ours.global_pool,
    )


def simclr_parts(cfg, vit):
    head = SimCLRProjectionHead(vit.num_features, cfg.method.proj_hidden_dim, cfg.method.proj_output_dim)
    criterion = NTXentLoss(temperature=cfg.method.temperature)

    def forward(views):
        return criterion(*(head(vit(v)) for v in views))

    return [vit, head], forward, lambda: None


def byol_parts(cfg, vit):
    m = cfg.method
    online = torch.nn.Sequential(vit, BYOLProjectionHead(vit.num_features, m.proj_hidden_dim, m.proj_output_dim))
    predictor = BYOLPredictionHead(m.proj_output_dim, m.pred_hidden_dim, m.proj_output_dim)
    target = copy.deepcopy(online).requires_grad_(False)
    criterion = NegativeCosineSimilarity()

    def forward(views):
        p = [predictor(online(v)) for v in views]
        with torch.no_grad():
            z = [target(v) for v in views]
        return 0.5 * (criterion(p[0], z[1]) + criterion(p[1], z[0]))

    return [online, predictor], forward, lambda: lightly_utils.update_momentum(online, target, 0.99)


def mae_parts(cfg, vit):
    m = cfg.method
    encoder = MaskedVisionTransformerTIMM(vit=vit)
    patch = vit.patch_embed.patch_size[0]
    decoder = MAEDecoderTIMM(
        num_patches=vit.patch_embed.num_patches,
        patch_size=patch,
        embed_dim=vit.embed_dim,
        decoder_embed_dim=m.decoder_dim,
        decoder_depth=m.decoder_depth,
        decoder_num_heads=m.decoder_heads,
    )
    # the suite's decoder blocks carry the backbone's QK-norm and LayerScale: stock timm Blocks
    # with the same two options, so both sides run the same model
    decoder.decoder_blocks = torch.nn.Sequential(
        *(
            timm.models.vision_transformer.Block(
                m.decoder_dim, m.decoder_heads, qkv_bias=True, qk_norm=True, init_values=LAYER_SCALE_INIT
            )
            for _ in range(m.decoder_depth)
        )
    )
    length = vit.patch_embed.num_patches + 1

    def forward(views):
        images = views[0]
        keep, mask = lightly_utils.random_token_mask((len(images), length), m.mask_ratio, device=images.device)
        tokens = decoder.embed(encoder.encode(images, idx_keep=keep))
        full = lightly_utils.repeat_token(decoder.mask_token, (len(images), length))
        decoded = decoder.decode(lightly_utils.set_at_index(full, keep, tokens.type_as(full)))
        pred = decoder.predict(lightly_utils.get_at_index(decoded, mask))
        target = lightly_utils.get_at_index(lightly_utils.patchify(images, patch), mask - 1)
        if m.norm_pix_loss:  # as the suite's loss
            target = lightly_utils.normalize_mean_var(target, eps=1e-6)
        return torch.nn.functional.mse_loss(pred, target)

    return [encoder, decoder], forward, lambda: None


PLAIN = {"demo": simclr_parts, "compare": simclr_parts, "vit_s16": simclr_parts, "simclr": simclr_parts}
PLAIN |= {"byol": byol_parts, "mae": mae_parts}


def plain_optimizer(optim_cfg, params: list) -> torch.optim.Optimizer:
    # the config's optimizer type, so the ratio measures the loop and not the algorithm (LARS
    # updates parameter by parameter: on a GPU at ViT-S/16 it costs ~6x AdamW's fused step)
    if optim_cfg.name == "lars":
        return LARS(params, lr=1e-4, momentum=optim_cfg.momentum, weight_decay=optim_cfg.weight_decay)
    if optim_cfg.name == "sgd":
        return torch.optim.SGD(params, lr=1e-4, momentum=optim_cfg.momentum, weight_decay=optim_cfg.weight_decay)
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=optim_cfg.weight_decay)


def forever(batches):
    while True:
        yield from batches


def plain_parts(name: str, cfg, warm: int, steps: int, device: str) -> dict:
    torch.manual_seed(cfg.seed)
    modules, forward, after_step = PLAIN[name](cfg, stock_vit(timm.create_model(cfg.model.name, num_classes=0)))
    modules = [mod.to(device).train() for mod in modules]
    opt = plain_optimizer(cfg.optim, [p for mod in modules for p in mod.parameters()])
    views_of = device_views(cfg.data).to(device)
    dtype = torch.bfloat16 if cfg.trainer.precision.startswith("bf16") else None
    times = dict.fromkeys(PARTS, 0.0)
    batches = forever(loader(ssl_train_dataset(cfg.data), cfg))
    clock = time.perf_counter

    def tick(part: str, start: float) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        now = clock()
        times[part] += now - start
        return now

    for i in range(warm + steps):
        if i == warm:
            times, begin = dict.fromkeys(PARTS, 0.0), clock()
        t = clock()
        images, _ = next(batches)
        t = tick("data", t)
        views = views_of(images.to(device, non_blocking=True))
        t = tick("views", t)
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = forward(views)
        t = tick("forward", t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t = tick("backward", t)
        opt.step()
        after_step()
        tick("optimizer", t)
    total = clock() - begin
    times["other"] = total - sum(times.values())
    return {k: v / steps for k, v in times.items()} | {"step": total / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--steps", type=int, default=20, help="measured steps per run (after the warm-up)")
    ap.add_argument("--warm", type=int, default=4, help="warm-up steps (compiled runs: 4 more)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed")
    ap.add_argument("--compile", action="store_true", help="also time the suite with trainer.compile=true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, {args.precision}\n")
    print("| case | loop | step ms | " + " | ".join(PARTS) + " | samples/s | plain / this |")
    print("|---|---|---|" + "---|" * len(PARTS) + "---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            cfg = case_config(name, args, Path(tmp))
            steps = max(4, args.steps // 3) if name == "vit_s16" and args.device == "cpu" else args.steps
            rows = (
                {"plain timm + lightly": plain_parts(name, cfg, args.warm, steps, args.device)} if name in PLAIN else {}
            )
            rows["ssl-suite"] = suite_parts(cfg.copy(), args.warm, steps, compile=False)
            if args.compile:
                rows["ssl-suite, compiled"] = suite_parts(cfg.copy(), args.warm + 4, steps, compile=True)
            base = rows.get("plain timm + lightly")
            for loop, r in rows.items():
                ratio = f"{base['step'] / r['step']:.2f}" if base else "no stock loop"
                parts = " | ".join(f"{1000 * r[p]:.0f}" for p in PARTS)
                rate = cfg.data.batch_size / r["step"]
                print(f"| {name} | {loop} | {1000 * r['step']:.0f} | {parts} | {rate:.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
