"""``ssl-suite export CKPT OUT``: a trained backbone out to the ecosystem.

- ``OUT.safetensors``: the weights alone, for
  ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=OUT))``;
- ``OUT/`` (any other path): the Hugging Face / timm folder layout, ``model.safetensors``,
  ``config.json`` (timm's pretrained_cfg with the architecture, plus ``model_args`` carrying the
  suite's attention settings) and a ``README.md`` model card (objective, data, steps, config,
  the eval results when the checkpoint has them, how to load it), which
  ``timm.create_model("local-dir:OUT", pretrained=True)`` loads offline after ``import ssl_suite``.

The weights are first loaded strictly into a freshly built backbone, so nothing that would not
load is written; files and folders appear whole or not at all, and an existing export is only
replaced with ``overwrite``, after the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from .checkpoints import load_backbone_weights, safe_load
from .errors import UserError
from .files import atomic_write

if TYPE_CHECKING:
    from torch import nn

PAPERS = {  # objective -> (paper, arXiv)
    "simclr": ("SimCLR, Chen et al. 2020", "https://arxiv.org/abs/2002.05709"),
    "polyview": ("Poly-view contrastive learning, Shidani et al. 2024", "https://arxiv.org/abs/2403.05490"),
    "byol": ("BYOL, Grill et al. 2020", "https://arxiv.org/abs/2006.07733"),
    "mae": ("MAE, He et al. 2022", "https://arxiv.org/abs/2111.06377"),
    "ijepa": ("I-JEPA, Assran et al. 2023", "https://arxiv.org/abs/2301.08243"),
}
SIGMOID_PAPER = "https://arxiv.org/abs/2409.04431"  # Ramapuram et al., sigmoid self-attention


@dataclass
class Exported:
    path: Path
    model: str
    encoder: str
    folder: bool


def _checkpoint_meta(checkpoint: Path) -> tuple[Any, dict | None, dict]:
    """(the file's content, read once; the suite config or None; {"global_step", "epoch"}) of a
    Lightning checkpoint; exports and plain state dicts have no config or progress."""
    if checkpoint.suffix == ".safetensors" or checkpoint.is_dir():
        return None, None, {}
    blob = safe_load(checkpoint)
    cfg = blob.get("hyper_parameters", {}).get("config") if isinstance(blob, dict) else None
    return blob, cfg, {k: blob[k] for k in ("global_step", "epoch") if isinstance(blob, dict) and k in blob}


def export_backbone(
    checkpoint: str | Path,
    out: str | Path,
    model_name: str | None = None,
    overwrite: bool = False,
    encoder: str = "auto",
) -> Exported:
    import timm

    import ssl_suite.models  # noqa: F401  (registers the sigmoid names)

    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"export path {out} exists; pass --overwrite to replace it")
    blob, cfg, progress = _checkpoint_meta(checkpoint)
    if model_name is None and cfg is None:
        raise UserError(
            f"{checkpoint} is not an ssl-suite Lightning checkpoint (it has no saved config): pass --model NAME"
        )
    name = model_name or cast("dict", cfg)["model"]["name"]  # no name given: cfg is set (checked above)
    model_args = {}
    if cfg is not None and name.endswith("_sigmoid"):
        model_args = {"attention": cfg["model"]["attention"], "sigmoid_bias": cfg["model"]["sigmoid_bias"]}
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0, **model_args)
    except RuntimeError as err:
        raise UserError(f"--model {name!r}: {str(err).splitlines()[0]}") from None
    model = load_backbone_weights(model, checkpoint, encoder, blob)
    used = cast(str, model.ssl_encoder)  # the encoder name load_backbone_weights recorded
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"model": name, "source": str(checkpoint), "encoder": used}
    from safetensors.torch import save_file

    if out.suffix == ".safetensors":
        atomic_write(out, lambda tmp: save_file(state, tmp, metadata=meta))
        return Exported(out, name, used, folder=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata=meta)
        (tmp / "config.json").write_text(json.dumps(hub_config(model, name, model_args, cfg, used), indent=2))
        (tmp / "README.md").write_text(model_card(name, cfg, progress, used, checkpoint, out))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Exported(out, name, used, folder=True)


def _replace_dir(new: Path, out: Path) -> None:
    """Move the finished folder into place; an old one is removed only once the new one is there."""
    if not out.exists():
        os.replace(new, out)
        return
    old = out.with_name(f".{out.name}.old")
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old) if old.is_dir() else old.unlink()


def hub_config(model: nn.Module, name: str, model_args: dict, cfg: dict | None, encoder: str) -> dict:
    """timm's config.json: architecture, num_classes/num_features, pretrained_cfg, model_args."""
    pretrained_cfg = cast("dict[str, Any]", model.pretrained_cfg)  # a timm model's
    keep = {k: v for k, v in pretrained_cfg.items() if k not in ("file", "source", "url", "hf_hub_id", "tag")}
    out = {
        "architecture": name,
        "num_classes": 0,
        "num_features": model.num_features,
        "pretrained_cfg": json.loads(json.dumps(keep)),
        "model_args": model_args,
    }
    if cfg is not None:
        out["ssl_suite"] = {
            "objective": cfg["method"]["name"],
            "encoder": encoder,
            "attention": cfg["model"]["attention"],
            "data": cfg["data"]["dataset"],
        }
    return out


def _eval_table(checkpoint: Path, cfg: dict | None) -> str | None:
    results = checkpoint.with_name(checkpoint.name + ".eval.md")
    return results.read_text().strip() if results.is_file() else None


def model_card(name: str, cfg: dict | None, progress: dict, encoder: str, checkpoint: Path, out: Path) -> str:
    attention = cfg["model"]["attention"] if cfg else "sigmoid"
    objective = cfg["method"]["name"] if cfg else "unknown"
    lines = _card_intro(name, objective, attention, encoder)
    if cfg is not None:
        lines += _card_training(cfg, progress)
    lines += _card_evaluation(checkpoint, cfg)
    lines += _card_loading(out)
    return "\n".join(lines)


def _card_intro(name: str, objective: str, attention: str, encoder: str) -> list[str]:
    """The card's front matter (Hub metadata), title and one-paragraph description."""
    paper, link = PAPERS.get(objective, (objective, ""))
    return [
        "---",
        "library_name: timm",
        "license: apache-2.0",
        f"tags: [image-feature-extraction, timm, ssl-suite, {objective}, {attention}-attention]",
        "---",
        "",
        f"# {name} ({objective}, {attention} attention)",
        "",
        f"A headless Vision Transformer backbone pretrained with [{paper}]({link}) by "
        f"[ssl-suite](https://github.com/) using {attention} attention"
        + (
            f" ([sigmoid self-attention]({SIGMOID_PAPER}): sigmoid(q k^T / sqrt(d) - log n) v)"
            if attention == "sigmoid"
            else ""
        )
        + f"; this is the checkpoint's {encoder} encoder.",
        "",
    ]


def _card_training(cfg: dict, progress: dict) -> list[str]:
    """The "Training" section: data, steps, optimizer, and the full config folded away."""
    d, t = cfg["data"], cfg["trainer"]
    return [
        "## Training",
        "",
        f"- data: {d['dataset']} ({d['root'] or 'default location'}), {d['image_size']} px, "
        f"{d['num_views']} view(s) per image",
        f"- steps: {progress.get('global_step', '?')} (epochs completed: {progress.get('epoch', '?')}), "
        f"per-device batch {d['batch_size']}, precision {t['precision']}",
        f"- optimizer: {cfg['optim']['name']} lr {cfg['optim']['lr']} at batch {cfg['optim']['base_batch_size']}",
        "",
        "<details><summary>full config</summary>",
        "",
        "```yaml",
        yaml.safe_dump(cfg, sort_keys=False).strip(),
        "```",
        "",
        "</details>",
        "",
    ]


def _card_evaluation(checkpoint: Path, cfg: dict | None) -> list[str]:
    """The "Evaluation" section: the results table saved beside the checkpoint, or how to make one."""
    table = _eval_table(checkpoint, cfg)
    return [
        "## Evaluation",
        "",
        table
        if table
        else "No evaluation results were saved with this checkpoint "
        "(`ssl-suite eval all CONFIG --checkpoint CKPT` writes them beside it).",
        "",
    ]


def _card_loading(out: Path) -> list[str]:
    """The "How to load" section: the timm call that loads this export."""
    return [
        "## How to load",
        "",
        "```python",
        "import timm",
        "import ssl_suite  # registers the sigmoid-attention ViTs",
        "",
        f'model = timm.create_model("local-dir:{out}", pretrained=True)  # headless: features',
        "```",
        "",
    ]
