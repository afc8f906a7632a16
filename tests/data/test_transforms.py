import torch

from ssl_suite.config import load_config
from ssl_suite.data import device_views, ssl_train_dataset


def _cfg(root, *extra):
    return load_config(
        None,
        [f"data.root={root}", "data.num_views=3", "method.name=polyview", "data.augment.gaussian_blur=0.5", *extra],
    )


def test_device_path_matches_cpu_path_shapes_and_ranges(fake_fashion_mnist):
    cpu_views, _ = zip(*[ssl_train_dataset(_cfg(fake_fashion_mnist).data)[i] for i in range(16)])
    cpu = torch.stack([torch.stack(v) for v in cpu_views], 1)  # (M, B, C, H, W)

    cfg = _cfg(fake_fashion_mnist, "data.augment_on=device")
    images, _ = zip(*[ssl_train_dataset(cfg.data)[i] for i in range(16)])
    raw = torch.stack(images)
    assert raw.shape == (16, 3, 28, 28) and raw.dtype == torch.uint8  # floats made on the device
    torch.manual_seed(0)
    dev = torch.stack(device_views(cfg.data)(raw))
    assert dev.shape == cpu.shape == (3, 16, 3, 28, 28)
    # Both normalise [0, 1] with mean = std = 0.5, so values lie in [-1, 1] and fill most of it.
    for views in (cpu, dev):
        assert views.min() >= -1 - 1e-5 and views.max() <= 1 + 1e-5
        assert views.max() - views.min() > 1.0
    assert not torch.equal(dev[0], dev[1]), "views differ"
