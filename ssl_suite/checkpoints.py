"""Backbone weights in: Lightning checkpoints, safetensors exports, plain state dicts; never a
pickle that can run code (``export.py`` writes them out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from .errors import UserError

BACKBONE_PREFIX = "backbone."
ENCODER_CHOICES = ("auto", "online", "target")
# What an ssl-suite method writes into its checkpoints (SSLMethod.on_save_checkpoint):
# {"prefixes": {"online": "backbone.", "target": ...}, "default": the encoder its paper evaluates}.
ENCODERS_KEY = "encoders"


def checkpoint_dir(cfg: DictConfig) -> Path:
    """Where a run's checkpoints live: ``output_dir/checkpoints`` (last.ckpt, epochNNN.ckpt)."""
    return Path(cfg.output_dir) / "checkpoints"


def safe_load(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with every failure as one line naming the file: missing,
    empty, truncated, not a PyTorch file, or a pickle that carries code (refused, never run)."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"{what} {path} is empty (0 bytes): a save that never finished? use an earlier one")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):
            raise UserError(
                f"{what} {path} was refused: it holds pickled objects beyond tensors and plain containers, "
                "which could run code when loaded; ssl-suite loads weights only (save a state dict or "
                "safetensors instead)"
            ) from None
        raise UserError(
            f"{what} {path} was refused: it is not a weights-only PyTorch file (a plain pickle, which "
            "could carry code, or another format); save it with torch.save(state_dict) or as "
            "safetensors"
        ) from None
    except RuntimeError as err:
        if "zip archive" in str(err) or "central directory" in str(err):
            raise UserError(
                f"{what} {path} is truncated or not a PyTorch checkpoint (its zip archive is incomplete)"
            ) from None
        raise UserError(f"{what} {path} cannot be read: {str(err).splitlines()[0]}") from None
    except Exception as err:  # EOFError, KeyError, ... from a file that is not a torch save at all
        raise UserError(f"{what} {path} is not a PyTorch checkpoint ({type(err).__name__} while reading it)") from None


def suite_config(path: str | Path) -> dict:
    """The config an ssl-suite Lightning checkpoint was trained with (one line if it has none)."""
    blob = safe_load(path)
    try:
        return blob["hyper_parameters"]["config"]
    except (KeyError, TypeError):
        raise UserError(f"{path} is not an ssl-suite Lightning checkpoint (it has no saved config)") from None


def _encoder_prefix(blob: dict, path: Path, encoder: str) -> tuple[str, str]:
    """(state-dict prefix, encoder name) for ``encoder`` (auto: the method's paper's choice)."""
    if encoder not in ENCODER_CHOICES:
        raise UserError(f"encoder {encoder!r}: expected one of {', '.join(ENCODER_CHOICES)}")
    known = blob.get(ENCODERS_KEY) or {"prefixes": {"online": BACKBONE_PREFIX}, "default": "online"}
    name = known["default"] if encoder == "auto" else encoder
    if name not in known["prefixes"]:
        raise UserError(f"checkpoint {path} has no {name} encoder; it has: {', '.join(known['prefixes'])}")
    return known["prefixes"][name], name


def read_backbone(path: str | Path, encoder: str = "auto", blob: Any = None) -> tuple[dict[str, torch.Tensor], str]:
    """(backbone tensors, which encoder) from a Lightning checkpoint (keys under the encoder's
    prefix: ``backbone.`` for the online network; I-JEPA's default is its EMA target), a
    safetensors file, or a plain state dict; loaded with ``weights_only=True`` or safetensors."""
    path = Path(path)
    if path.suffix == ".safetensors" or path.is_dir():  # an export: a file, or a Hub-style folder
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        file = path / "model.safetensors" if path.is_dir() else path
        if not file.is_file():
            raise UserError(f"checkpoint not found: {file}")
        try:
            return load_file(str(file)), "as exported"
        except (SafetensorError, OSError) as err:
            raise UserError(f"{file} is not a valid safetensors file: {str(err).splitlines()[0]}") from None
    blob = safe_load(path) if blob is None else blob  # ``blob``: the file's content, if the caller read it
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds no state dict")
    prefix, name = _encoder_prefix(blob, path, encoder)
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, name
    return state, "plain state dict"


def read_state_dict(path: str | Path, encoder: str = "auto") -> dict[str, torch.Tensor]:
    return read_backbone(path, encoder)[0]


def load_backbone_weights(model: nn.Module, path: str | Path, encoder: str = "auto", blob: Any = None) -> nn.Module:
    """Load strictly; a checkpoint of another architecture names the mismatch in one line.
    ``model.ssl_encoder`` records which encoder of the checkpoint it holds."""
    state, encoder_name = read_backbone(path, encoder, blob)
    model.ssl_encoder = encoder_name  # type: ignore[assignment]  # an attribute timm models do not declare
    own = model.state_dict()
    head = getattr(model, "pretrained_cfg", {}).get("classifier") or ("head" if hasattr(model, "head") else None)
    if head and not any(k.startswith(head + ".") for k in own):  # a headless probe model: drop the classifier
        state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (first: {shapes[0]})")
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]})")
        raise UserError(
            f"checkpoint {path} does not fit model {type(model).__name__}"
            f" ({getattr(model, 'default_cfg', {}).get('architecture', '?')}): {'; '.join(parts)}"
        )
    model.load_state_dict(state, strict=True)
    return model
