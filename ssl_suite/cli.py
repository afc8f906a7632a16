"""``ssl-suite pretrain | eval | recipe | compare | export``: thin argument parsing over train.py and eval/run.py.

Mistakes a user can fix (missing data, unknown config keys, mismatched checkpoints) print one
line and exit with status 2, never a deep stack trace.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from .checkpoints import ENCODER_CHOICES
from .config import PROBES
from .errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)  # disk full, quota, read-only, permission


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ssl-suite", description="Self-supervised ViTs with sigmoid attention.")
    sub = p.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("pretrain", help="pretrain a backbone from a config")
    pre.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    pre.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_epochs=3")
    pre.add_argument(
        "--resume",
        nargs="?",
        const="last",
        default=None,
        help="resume from output_dir/checkpoints/last.ckpt, or from the given checkpoint",
    )
    pre.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh even if output_dir already holds checkpoints (they are deleted)",
    )
    ev = sub.add_parser("eval", help="probe a frozen backbone beside its random init and raw pixels")
    ev.add_argument("probe", help="all, or one or more (comma-separated) of: " + ", ".join(PROBES))
    ev.add_argument("config")
    ev.add_argument("overrides", nargs="*")
    ev.add_argument("--checkpoint", help="Lightning .ckpt or .safetensors (default: the run's last.ckpt)")
    ev.add_argument("--no-baseline", action="store_true", help="skip the floors (random init and raw pixels)")
    ev.add_argument("--random-init", action="store_true", help="evaluate only the random-init backbone")
    ev.add_argument("--pixels", action="store_true", help="evaluate only the raw-pixel baseline")
    rec = sub.add_parser("recipe", help="print the hyperparameters a run would derive (builds and trains nothing)")
    rec.add_argument("config")
    rec.add_argument("overrides", nargs="*", help="e.g. trainer.devices=8 trainer.num_nodes=1 data.batch_size=256")
    rec.add_argument("--json", action="store_true", help="one JSON object instead of text")
    cmp = sub.add_parser("compare", help="objectives x attention grid: pretrain, evaluate, report")
    cmp.add_argument("grid", help="grid YAML, e.g. configs/compare/fmnist_cpu.yaml")
    cmp.add_argument("--run", type=int, help="run only cell INDEX (e.g. $SLURM_ARRAY_TASK_ID), no report")
    cmp.add_argument("--print-jobs", action="store_true", help="print one command per cell for a scheduler")
    cmp.add_argument("--report", action="store_true", help="only (re)write the report from finished cells")
    ex = sub.add_parser("export", help="write a checkpoint's backbone for timm: a .safetensors file or a Hub folder")
    ex.add_argument("checkpoint", help="Lightning .ckpt from ssl-suite pretrain")
    ex.add_argument("out", help="OUT.safetensors (weights) or OUT_DIR (model.safetensors, config.json, README.md)")
    ex.add_argument("--model", help="timm name (default: the one in the checkpoint's config)")
    ex.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    ex.add_argument(
        "--encoder",
        choices=ENCODER_CHOICES,
        default="auto",
        help="which encoder: auto = the one the method's paper evaluates (I-JEPA: the EMA target; "
        "others: the online backbone)",
    )
    return p


def _export(args: argparse.Namespace) -> None:
    from .export import export_backbone

    done = export_backbone(args.checkpoint, args.out, args.model, args.overwrite, args.encoder)
    how = (
        f"timm.create_model('local-dir:{done.path}', pretrained=True)"
        if done.folder
        else f"timm.create_model({done.model!r}, pretrained=True, pretrained_cfg_overlay=dict(file={str(done.path)!r}))"
    )
    print(f"{done.model} backbone ({done.encoder} encoder) written to {done.path}; load it with {how}", end="")
    print(" after `import ssl_suite`")


def _compare(args: argparse.Namespace) -> None:
    from .compare import compare, load_grid

    path: Path | None
    if args.report:
        from .report import write_report

        path = write_report(load_grid(args.grid).output_dir)
    else:
        path = compare(args.grid, args.run, args.print_jobs)
    if path is not None:
        print(f"report: {path}")


def _eval(cfg: DictConfig, args: argparse.Namespace) -> None:
    from .eval.results import markdown_table, save_results
    from .eval.run import evaluate, parse_probes, resolve_checkpoint

    only_floor = args.random_init or args.pixels
    checkpoint = None if only_floor else resolve_checkpoint(cfg, args.checkpoint)
    rows = evaluate(
        cfg,
        checkpoint,
        parse_probes(args.probe),
        baseline=not (args.no_baseline or args.pixels),
        pixels=not (args.no_baseline or args.random_init),
    )
    print(markdown_table(rows, cfg))
    json_path, md_path = save_results(rows, cfg, checkpoint)
    print(f"\nresults: {json_path} and {md_path}")


def _run(args: argparse.Namespace) -> None:
    if args.command == "export":
        return _export(args)
    if args.command == "compare":
        return _compare(args)
    from .config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.command == "recipe":
        from .recipe import print_recipe

        print_recipe(cfg, as_json=args.json)
    elif args.command == "pretrain":
        from .train import pretrain

        print(f"last checkpoint: {pretrain(cfg, resume=args.resume, overwrite=args.overwrite)}")
    else:
        _eval(cfg, args)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra:  # key=value overrides may also follow the flags: pretrain CFG --overwrite trainer.max_epochs=3
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            p.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        _run(args)
    except UserError as err:
        print(f"ssl-suite: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        # Files are written whole or not at all (files.py, Lightning's checkpoints): nothing saved before is lost.
        print(
            f"ssl-suite: error: cannot write {err.filename or 'a file'}: {err.strerror}; free space (or fix "
            "permissions) and run again: finished files are kept",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
