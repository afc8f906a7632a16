"""Backbone weights in and out: Lightning checkpoints, safetensors exports, never code-running pickles."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import UserError
from .files import atomic_write

BACKBONE_PREFIX = "backbone."
ENCODER_CHOICES = ("auto", "online", "target")
# What an ssl-suite method writes into its checkpoints (SSLMethod.on_save_checkpoint):
# {"prefixes": {"online": "backbone.", "target": ...}, "default": the encoder its paper evaluates}.
ENCODERS_KEY = "encoders"


def _encoder_prefix(blob: dict, path: Path, encoder: str) -> tuple[str, str]:
    """(state-dict prefix, encoder name) for ``encoder`` (auto: the method's paper's choice)."""
    if encoder not in ENCODER_CHOICES:
        raise UserError(f"encoder {encoder!r}: expected one of {', '.join(ENCODER_CHOICES)}")
    known = blob.get(ENCODERS_KEY) or {"prefixes": {"online": BACKBONE_PREFIX}, "default": "online"}
    name = known["default"] if encoder == "auto" else encoder
    if name not in known["prefixes"]:
        raise UserError(f"checkpoint {path} has no {name} encoder; it has: {', '.join(known['prefixes'])}")
    return known["prefixes"][name], name


def read_backbone(path: str | Path, encoder: str = "auto") -> tuple[dict[str, torch.Tensor], str]:
    """(backbone tensors, which encoder) from a Lightning checkpoint (keys under the encoder's
    prefix: ``backbone.`` for the online network; I-JEPA's default is its EMA target), a
    safetensors file, or a plain state dict; loaded with ``weights_only=True`` or safetensors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path)), "as exported"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"cannot load checkpoint {path} safely (weights only): {str(err).splitlines()[0]}") from None
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds no state dict")
    prefix, name = _encoder_prefix(blob, path, encoder)
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, name
    return state, "plain state dict"


def read_state_dict(path: str | Path, encoder: str = "auto") -> dict[str, torch.Tensor]:
    return read_backbone(path, encoder)[0]


def load_backbone_weights(model: nn.Module, path: str | Path, encoder: str = "auto") -> nn.Module:
    """Load strictly; a checkpoint of another architecture names the mismatch in one line.
    ``model.ssl_encoder`` records which encoder of the checkpoint it holds."""
    state, model.ssl_encoder = read_backbone(path, encoder)
    own = model.state_dict()
    head = getattr(model, "pretrained_cfg", {}).get("classifier") or ("head" if hasattr(model, "head") else None)
    if head and not any(k.startswith(head + ".") for k in own):  # a headless probe model: drop the classifier
        state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (first: {shapes[0]})")
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]})")
        raise UserError(f"checkpoint {path} does not fit model {type(model).__name__}"
                        f" ({getattr(model, 'default_cfg', {}).get('architecture', '?')}): {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
    return model


def checkpoint_model_name(path: str | Path) -> str:
    """The timm name a suite checkpoint was trained with (from its saved config)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    try:
        return blob["hyper_parameters"]["config"]["model"]["name"]
    except (KeyError, TypeError):
        raise UserError(f"{path} is not an ssl-suite Lightning checkpoint (no saved config): "
                        "pass --model NAME") from None


def export_backbone(checkpoint: str | Path, out: str | Path, model_name: str | None = None,
                    overwrite: bool = False, encoder: str = "auto") -> tuple[Path, str, str]:
    """Write the backbone of ``checkpoint`` as safetensors that
    ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=out))`` loads.
    The weights are first loaded strictly into a freshly built backbone, so a file that would
    not load is never written; the file appears whole or not at all (temporary file + rename).
    Returns (path, model name, which encoder was exported)."""
    import timm
    from safetensors.torch import save_file

    import ssl_suite.models  # noqa: F401  (registers the sigmoid names)

    out = Path(out)
    if out.suffix != ".safetensors":
        raise UserError(f"export path must end in .safetensors, got {out}")
    if out.exists() and not overwrite:
        raise UserError(f"export path {out} exists; pass --overwrite to replace it")
    name = model_name or checkpoint_model_name(checkpoint)
    model = load_backbone_weights(timm.create_model(name, pretrained=False, num_classes=0), checkpoint, encoder)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: save_file(state, tmp, metadata={"model": name, "source": str(checkpoint),
                                                                   "encoder": model.ssl_encoder}))
    return out, name, model.ssl_encoder
