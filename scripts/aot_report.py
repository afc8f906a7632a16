"""Registers and spills of the FlashSigmoid Triton kernels, compiled ahead of time (no GPU).

    python scripts/aot_report.py [--arch 80 90] [--d 64 128]

Uses triton.compile for each (arch, dtype, head dim) and the ptxas shipped inside the triton
package (`ptxas -v`) for the counts; prints a Markdown table.
"""

import argparse

import torch
from flash_sigmoid import triton_kernels as tk


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    ap.add_argument("--d", type=int, nargs="+", default=[64, 128])
    args = ap.parse_args()
    if tk.ptxas_path() is None:
        raise SystemExit("ptxas not found inside the triton package")
    rows = tk.aot_report(archs=args.arch, dtypes=(torch.float16, torch.bfloat16), dims=args.d)
    print("| kernel | arch | dtype | d | BLOCK_M x BLOCK_N | warps | stages | registers | spill bytes | wgmma |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['kernel']} | {r['arch']} | {r['dtype']} | {r['d']} | {r['BLOCK_M']} x {r['BLOCK_N']} "
            f"| {r['num_warps']} | {r['num_stages']} | {r['regs']} | {r['spills']} | {'yes' if r['wgmma'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
