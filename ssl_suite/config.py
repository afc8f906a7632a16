"""Typed configs: dataclasses are the schema, YAML files hold values, dotted overrides on the CLI.

    cfg = load_config("configs/demo.yaml", ["trainer.max_epochs=3", "method.temperature=0.2"])

OmegaConf's structured configs check types; unknown keys and bad values become one-line
``UserError``s naming the key and the valid choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .checkpoints import ENCODER_CHOICES
from .data.datasets import DATASETS
from .data.spurious import FAIRNESS_DATA
from .data.transforms import ViewRecipe
from .errors import UserError
from .scaling import check_momentum

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass
class ModelConfig:
    name: str = "vit_nano_patch7_28_sigmoid"  # any timm name; ssl_suite registers *_sigmoid ones
    attention: str = "sigmoid"  # sigmoid | softmax
    sigmoid_bias: float | None = None  # None: -log(n_keys) at run time
    drop_path_rate: float = 0.0


@dataclass
class DataConfig:
    dataset: str = "fashion_mnist"  # fashion_mnist | imagefolder | folder (unlabelled images at any depth)
    root: str | None = None
    download: bool = False
    train_split: str = "train"
    eval_split: str = "test"
    image_size: int = 28
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    resize_for_eval: bool = False  # ImageNet: resize + centre crop
    batch_size: int = 256  # per device
    num_workers: int = 2
    num_views: int = 2  # views per sample (M); samples per batch = batch_size
    augment_on: str = "cpu"  # cpu: lightly transforms in loader workers | device: kornia on batches
    train_subset: int | None = None  # first N training images (quick runs)
    skip_bad_images: bool = False  # ImageFolder: drop (and count) unreadable files instead of stopping
    augment: ViewRecipe = field(default_factory=ViewRecipe)  # views: data/transforms.py


@dataclass
class MethodConfig:
    name: str = "simclr"  # simclr | polyview | byol | mae | ijepa
    objective: str = "geometric"  # polyview: geometric | arithmetic | multicrop
    temperature: float = 0.1
    proj_hidden_dim: int = 512
    proj_output_dim: int = 128
    pred_hidden_dim: int = 512  # byol predictor
    momentum_base: float = 0.99  # byol (cosine to 1) / ijepa (linear to 1): EMA momentum at the base batch
    ema_scaling_rule: bool = True  # EMA momentum rho -> rho^kappa at kappa x the base batch
    # mae decoder / ijepa predictor: a narrow stack of the suite's attention blocks
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    mask_ratio: float = 0.75  # mae: fraction of patches hidden from the encoder
    norm_pix_loss: bool = True  # mae: targets normalised per patch
    num_targets: int = 4  # ijepa: target blocks per image
    target_scale: list[float] = field(default_factory=lambda: [0.15, 0.2])  # ijepa: fraction of the patches
    target_aspect: list[float] = field(default_factory=lambda: [0.75, 1.5])  # ijepa: height / width
    context_scale: list[float] = field(default_factory=lambda: [0.85, 1.0])
    min_context: int = 10  # ijepa: fewest context patches after removing the targets


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd | lars
    lr: float = 1e-3  # at base_batch_size; scaled to the effective batch by the optimizer's rule
    base_batch_size: int = 256
    weight_decay: float = 0.05
    weight_decay_end: float | None = None  # cosine schedule weight_decay -> weight_decay_end (I-JEPA)
    warmup_epochs: float = 1.0
    warmup_start_lr: float = 0.0  # linear warm-up from here to lr (at base_batch_size, scaled as lr)
    final_lr: float | None = None  # cosine decay to here (at base_batch_size, scaled as lr); None: 1e-3 x lr
    momentum: float = 0.9  # sgd / lars
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw, at the base batch
    eps: float = 1e-8  # adamw, at the base batch
    scaling_rule: bool = True  # scale lr (and Adam betas/eps) to the effective batch


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    max_steps: int = -1
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 20
    limit_train_batches: Any = 1.0
    checkpoint_every_n_epochs: int = 1
    checkpoint_every_n_steps: int | None = None  # also refresh last.ckpt mid-epoch (exact resume)
    checkpoint_every_n_minutes: float | None = None
    deterministic: bool = False
    nonfinite: str = "stop"  # a NaN/Inf loss or gradient: stop (one line, last good checkpoint kept) | skip the step
    sync_batchnorm: bool = True  # heads' BatchNorm over the global batch under DDP (as one device would see it)
    compile: Any = "auto"  # torch.compile blocks and heads: true | false | auto (on CUDA only; compilation.py)


@dataclass
class EvalConfig:
    pooling: str = "cls"  # cls | avg | cls_last:K (class tokens of the last K blocks)
    pixel_size: int | None = None  # raw-pixel baseline: area-downsample images larger than this (None: as they are)
    encoder: str = "auto"  # auto (the method's paper: I-JEPA's EMA target, else online) | online | target
    batch_size: int = 512
    num_workers: int = 0  # loader workers for feature extraction (cheap transforms: 0 avoids oversubscribing)
    train_subset: int | None = None  # probe on the first N training images
    # linear: MAE's probe (BN without affine + linear, SGD, cosine) on cached features
    linear_epochs: int = 30
    linear_lr: float = 0.1
    linear_batch_size: int = 1024
    linear_optimizer: str = "sgd"  # sgd | lars (MAE's probe at batch 16384: LARS's trust ratio on the weight)
    linear_augment: bool = False  # train the probe on augmented images on the fly (not cached)
    # logistic: L-BFGS logistic regression, C chosen on a held-out part of train (DINOv2)
    logistic_Cs: list[float] | None = None  # None: the default log-spaced grid
    logistic_val_fraction: float = 0.1
    knn_k: list[int] = field(default_factory=lambda: [10, 20, 100, 200])  # the first 20 (or first k) is tabled
    knn_temperature: float = 0.07
    fewshot_shots: list[int] = field(default_factory=lambda: [1, 2, 5])
    fewshot_percents: list[float] = field(default_factory=lambda: [1.0])
    fewshot_splits: int = 5
    fairness_data: str = "spurious_fashion"  # spurious_fashion (built offline) | csv
    fairness_root: str | None = None  # csv: a folder with train.csv and test.csv (path,label,group)
    fairness_correlation: float = 0.95  # spurious_fashion: P(attribute = label) in train
    calibration_bins: int = 15


@dataclass
class Config:
    output_dir: str = "runs/default"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


PROBES = ("linear", "logistic", "knn", "fewshot", "fairness", "calibration")  # ssl-suite eval


def choices() -> dict[str, tuple]:
    """Valid values per key, each list asked of the module that owns it (imported here, not at
    module import, so reading a config stays light until it is validated)."""
    from .compilation import COMPILE_MODES
    from .eval.linear import PROBE_OPTIMIZERS
    from .guards import MODES as NONFINITE_MODES
    from .losses.polyview import OBJECTIVES
    from .methods import METHODS, OPTIMIZERS
    from .models.attention import ATTENTION_MODES

    return {
        "model.attention": ATTENTION_MODES,
        "data.dataset": DATASETS,
        "data.augment_on": ("cpu", "device"),  # lightly transforms in workers | kornia on batches
        "method.name": tuple(METHODS),
        "method.objective": OBJECTIVES,
        "optim.name": OPTIMIZERS,
        "eval.fairness_data": FAIRNESS_DATA,
        "eval.encoder": ENCODER_CHOICES,
        "eval.linear_optimizer": PROBE_OPTIMIZERS,
        "trainer.nonfinite": NONFINITE_MODES,
        "trainer.compile": COMPILE_MODES,
    }


POSITIVE = (
    "data.image_size",
    "data.batch_size",
    "data.num_views",
    "optim.base_batch_size",
    "trainer.accumulate_grad_batches",
    "eval.batch_size",
    "eval.fewshot_splits",
    "eval.calibration_bins",
    "method.decoder_dim",
    "method.decoder_depth",
    "method.decoder_heads",
    "method.num_targets",
    "method.min_context",
    "optim.lr",
    "optim.eps",
    "method.proj_hidden_dim",
    "method.proj_output_dim",
    "method.pred_hidden_dim",
    "trainer.max_epochs",
    "trainer.num_nodes",
    "trainer.log_every_n_steps",
    "trainer.checkpoint_every_n_epochs",
    "eval.linear_epochs",
    "eval.linear_lr",
    "eval.linear_batch_size",
    "eval.knn_temperature",
    # optional: checked when set
    "data.train_subset",
    "eval.train_subset",
    "eval.pixel_size",
    "trainer.checkpoint_every_n_steps",
    "trainer.checkpoint_every_n_minutes",
)
NON_NEGATIVE = (
    "data.num_workers",
    "eval.num_workers",
    "optim.weight_decay",
    "optim.warmup_epochs",
    "optim.warmup_start_lr",
    "optim.final_lr",
    "optim.weight_decay_end",
    "model.drop_path_rate",
    "trainer.gradient_clip_val",
)
# (key, low, high): values must lie in [low, high] (probabilities, fractions)
CLOSED_RANGES = (
    ("data.augment.min_scale", 1e-9, 1.0),
    ("data.augment.cj_prob", 0.0, 1.0),
    ("data.augment.random_gray_scale", 0.0, 1.0),
    ("data.augment.gaussian_blur", 0.0, 1.0),
    ("data.augment.hf_prob", 0.0, 1.0),
    ("data.augment.cj_strength", 0.0, 10.0),
    ("optim.momentum", 0.0, 0.999999),
    ("eval.fairness_correlation", 0.0, 1.0),
    ("eval.logistic_val_fraction", 1e-9, 0.999999),
    ("model.drop_path_rate", 0.0, 0.999999),
)


def _valid_keys(schema: Any, dotted: str) -> list[str]:
    node = schema
    for part in [p for p in dotted.split(".")[:-1] if p]:
        if not isinstance(node, DictConfig) or part not in node:
            break
        node = node[part]
    # the schema's keys are its dataclass field names
    return sorted(cast("Iterable[str]", node.keys())) if isinstance(node, DictConfig) else []


def _merge(schema: DictConfig, other: DictConfig, source: str) -> DictConfig:
    try:
        return cast(DictConfig, OmegaConf.merge(schema, other))  # a mapping merged into a mapping
    except ConfigKeyError as err:
        key = err.full_key or str(err.key)
        raise UserError(
            f"{source}: unknown config key '{key}'; valid keys here: {', '.join(_valid_keys(schema, key))}"
        ) from None
    except OmegaConfBaseException as err:
        msg = str(err).splitlines()[0]
        raise UserError(f"{source}: bad value for '{err.full_key}': {msg}") from None


def device_count(devices: Any) -> int | None:
    """Devices per node as Lightning reads ``trainer.devices``: a count (an int or "3"), device
    indices (a list or "0,1"), or None for all visible ("auto", -1); one line for anything else."""
    if devices == "auto" or devices == -1:
        return None
    if isinstance(devices, str) and devices.replace(",", "").strip().isdigit():
        devices = [int(d) for d in devices.split(",")] if "," in devices else int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1:
        return devices
    if (OmegaConf.is_list(devices) or isinstance(devices, list)) and len(devices) > 0:
        if all(isinstance(d, int) and d >= 0 for d in devices):
            return len(devices)
    raise UserError(
        f"config trainer.devices={devices!r}: expected a count >= 1, -1 or auto (all), "
        "or a list of device indices such as [0, 1]"
    )


def validate_trainer(t: DictConfig) -> None:
    """What Lightning would reject deep inside Trainer(...), as one line here (its own lists)."""
    from lightning_fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS
    from pytorch_lightning.accelerators import AcceleratorRegistry
    from pytorch_lightning.strategies import StrategyRegistry

    precisions = (*get_args(_PRECISION_INPUT_STR), *get_args(_PRECISION_INPUT_STR_ALIAS))
    if str(t.precision) not in precisions:
        raise UserError(f"config trainer.precision={t.precision!r}: expected one of {', '.join(precisions)}")
    strategies = ("auto", *StrategyRegistry.available_strategies())
    if t.strategy not in strategies:
        raise UserError(
            f"config trainer.strategy={t.strategy!r}: expected one of auto, ddp, fsdp, deepspeed, ... "
            f"(Lightning's: {', '.join(strategies)})"
        )
    accelerators = ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))
    if t.accelerator not in accelerators:
        raise UserError(f"config trainer.accelerator={t.accelerator!r}: expected one of {', '.join(accelerators)}")
    device_count(t.devices)
    if not (isinstance(t.limit_train_batches, (int, float)) and t.limit_train_batches > 0):
        raise UserError(
            f"config trainer.limit_train_batches={t.limit_train_batches!r}: expected a fraction in (0, 1] "
            "or a number of batches >= 1"
        )


def validate(cfg: DictConfig) -> None:
    for key, valid in choices().items():
        value = OmegaConf.select(cfg, key)
        if value not in valid:
            raise UserError(f"config {key}={value!r}: expected one of {', '.join(map(str, valid))}")
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value is not None and value <= 0:
            raise UserError(f"config {key} must be positive, got {value}")
    for key in NON_NEGATIVE:
        value = OmegaConf.select(cfg, key)
        if value is not None and value < 0:
            raise UserError(f"config {key} must be >= 0, got {value}")
    for key, low, high in CLOSED_RANGES:
        value = OmegaConf.select(cfg, key)
        if not low <= value <= high:
            raise UserError(f"config {key}={value} must lie in [{low:g}, {high:g}]")
    if not all(0 < b < 1 for b in cfg.optim.betas) or len(cfg.optim.betas) != 2:
        raise UserError(f"config optim.betas must be two numbers in (0, 1), got {list(cfg.optim.betas)}")
    validate_trainer(cfg.trainer)
    if cfg.method.temperature <= 0:
        raise UserError(f"config method.temperature must be positive, got {cfg.method.temperature}")
    check_momentum(cfg.method.momentum_base, "config method.momentum_base")
    from .eval.features import parse_pooling

    try:
        last_k = parse_pooling(cfg.eval.pooling)
    except ValueError:
        last_k = 0
    if last_k == 0:
        raise UserError(
            f"config eval.pooling={cfg.eval.pooling!r}: expected cls, avg or cls_last:K with K >= 1"
        ) from None
    for key in ("eval.knn_k", "eval.fewshot_shots", "eval.fewshot_percents"):
        values = list(OmegaConf.select(cfg, key))
        if not values or min(values) <= 0:
            raise UserError(f"config {key} must be a non-empty list of positive numbers, got {values}")
    from .methods import METHODS

    # Each objective owns its keys of the method section: all owners check them (a bad value is
    # caught whichever objective is chosen), and the chosen one checks the views it takes.
    for owner in dict.fromkeys(METHODS.values()):
        owner.check_section(cfg.method)
    METHODS[cfg.method.name].check_views(cfg)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Schema defaults <- YAML file <- ``key=value`` overrides; validated."""
    cfg = OmegaConf.structured(Config)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            loaded = OmegaConf.load(path)
            if not isinstance(loaded, DictConfig):
                raise UserError(
                    f"{path}: a config must be a YAML mapping (key: value lines), got a "
                    f"{type(OmegaConf.to_container(loaded)).__name__}"
                )
            cfg = _merge(cfg, loaded, str(path))
        except UserError:
            raise
        except Exception as err:  # YAML syntax
            raise UserError(f"{path}: cannot parse YAML: {str(err).splitlines()[0]}") from None
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise UserError(f"override {bad[0]!r} is not of the form key=value")
        cfg = _merge(cfg, OmegaConf.from_dotlist(list(overrides)), "command line")
    validate(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)
