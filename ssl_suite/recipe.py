"""``ssl-suite recipe CONFIG [key=value ...] [--json]``: what a run would derive at the
config's devices x nodes x per-device batch x accumulation, before any GPU is rented.

Nothing heavy is built and nothing trains: the same ``scaling.recipe`` that
``SSLMethod.configure_optimizers`` calls is evaluated on the config alone, so a bad scaling
(Adam betas pushed out of (0, 1), warm-up longer than the run) is a one-line error here.
"""

from __future__ import annotations

import json

from omegaconf import DictConfig

from . import scaling
from .config import device_count
from .errors import UserError


def world_size(cfg: DictConfig) -> int:
    """devices x nodes, from the config (Lightning's ``auto``/-1 cannot be known off the machine)."""
    devices = device_count(cfg.trainer.devices)
    if devices is None:
        raise UserError(
            f"trainer.devices={cfg.trainer.devices!r}: give the number of devices per node "
            "(e.g. trainer.devices=8) to derive the recipe"
        )
    return devices * cfg.trainer.num_nodes  # num_nodes >= 1: checked with the config


def derive(cfg: DictConfig) -> dict:
    from .methods import METHODS  # class attributes only: nothing is built

    scaled = scaling.recipe(cfg, world_size(cfg), METHODS[cfg.method.name].ema_schedule)
    trainer_cfg = cfg.trainer
    return {
        "method": cfg.method.name,
        "model": cfg.model.name,
        "attention": cfg.model.attention,
        "per_device_batch": cfg.data.batch_size,
        "devices": world_size(cfg) // trainer_cfg.num_nodes,
        "num_nodes": trainer_cfg.num_nodes,
        "accumulate_grad_batches": trainer_cfg.accumulate_grad_batches,
        "views_per_sample": cfg.data.num_views,
        "precision": trainer_cfg.precision,
        **scaled.as_json(),
    }


def print_recipe(cfg: DictConfig, as_json: bool = False) -> None:
    r = derive(cfg)
    if as_json:
        print(json.dumps(r, indent=2))
        return
    print(f"{r['method']} on {r['model']} ({r['attention']} attention), {r['precision']}")
    print(
        f"effective batch {r['effective_batch']} = {r['per_device_batch']} per device x {r['devices']} devices x "
        f"{r['num_nodes']} nodes x {r['accumulate_grad_batches']} accumulation "
        f"(kappa {r['kappa']:g} against the recipe's base batch {r['base_batch']})"
    )
    rule = "" if r["rule"] else " (scaling rule off)"
    print(
        f"{r['optimizer']}: lr {r['lr']:.6g}{rule}, warm-up {r['warmup_epochs']:g} epochs from "
        f"{r['warmup_start_lr']:.3g}, cosine to {r['final_lr']:.3g} at epoch {r['max_epochs']}"
    )
    if r["betas"] is not None:
        print(f"betas ({r['betas'][0]:.6g}, {r['betas'][1]:.6g}), eps {r['eps']:.3g}")
    end = "" if r["weight_decay_end"] is None else f" -> {r['weight_decay_end']:g} (cosine)"
    print(f"weight decay {r['weight_decay']:g}{end}")
    if r["ema_momentum"] is not None:
        print(f"EMA target momentum at the start {r['ema_momentum']:.6g} (rho_base^{r['ema_kappa']:g})")
