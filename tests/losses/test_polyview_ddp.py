"""2 processes (gloo) against 1 process at the same global batch: equal loss and gradients."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_suite.losses import OBJECTIVES, PolyViewLoss

K_GLOBAL, M, D_IN, D = 8, 3, 6, 5


def setup():
    torch.manual_seed(0)
    layer = torch.nn.Linear(D_IN, D, dtype=torch.float64)
    x = torch.randn(K_GLOBAL, M, D_IN, dtype=torch.float64)
    return layer, x


def worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    for objective in OBJECTIVES:
        layer, x = setup()
        k = K_GLOBAL // world
        loss = PolyViewLoss(objective, 0.3, gather_distributed=True)(layer(x[rank * k : (rank + 1) * k]))
        loss.backward()
        for p in layer.parameters():  # what DDP does: average gradients over ranks
            dist.all_reduce(p.grad)
            p.grad /= world
        total = loss.detach().clone()
        dist.all_reduce(total)
        results[objective] = (total / world, layer.weight.grad.clone())
    out[rank] = results
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_loss_and_gradients_equal_single_process():
    out = mp.Manager().dict()
    mp.spawn(worker, args=(2, free_port(), out), nprocs=2, join=True)
    for objective in OBJECTIVES:
        layer, x = setup()
        loss = PolyViewLoss(objective, 0.3)(layer(x))
        loss.backward()
        for rank in (0, 1):
            ddp_loss, ddp_grad = out[rank][objective]
            torch.testing.assert_close(ddp_loss, loss.detach(), rtol=0, atol=1e-5)
            torch.testing.assert_close(ddp_grad, layer.weight.grad, rtol=0, atol=1e-5)
