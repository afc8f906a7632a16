import torch
from lightly.loss import NTXentLoss

from ssl_suite.config import load_config
from ssl_suite.methods import SimCLR


def test_training_step_is_ntxent_plus_online_probe_and_probe_is_detached():
    cfg = load_config(None, ["model.name=vit_nano_patch7_28_sigmoid", "method.temperature=0.3"])
    torch.manual_seed(0)
    method = SimCLR(cfg, num_classes=10)
    views = [torch.randn(8, 3, 28, 28), torch.randn(8, 3, 28, 28)]
    targets = torch.arange(8) % 10
    logged = {}
    method.log = lambda name, value, **kw: logged.__setitem__(name, value)
    method.log_dict = lambda d, **kw: logged.update(d)

    total = method.training_step((views, targets), 0)
    # Both views go through the head together: its BatchNorm sees the 2N batch, as in SimCLR.
    z0, z1 = method.projection_head(method.backbone(torch.cat(views))).chunk(2)
    expect = NTXentLoss(temperature=0.3)(z0, z1)
    torch.testing.assert_close(logged["train_loss"], expect)
    torch.testing.assert_close(total, expect + logged["train_online_cls_loss"])

    # The probe's loss must not reach the backbone: features are detached.
    method.zero_grad()
    logged["train_online_cls_loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in method.backbone.parameters())
    assert method.online_classifier.classification_head.weight.grad.abs().sum() > 0


def _step_loss(overrides, views):
    cfg = load_config(None, ["model.name=vit_nano_patch7_28_sigmoid", *overrides])
    torch.manual_seed(0)
    method = SimCLR(cfg, num_classes=10)
    logged = {}
    method.log = lambda name, value, **kw: logged.__setitem__(name, value)
    method.log_dict = lambda d, **kw: None
    method.training_step((views, torch.zeros(len(views[0]), dtype=torch.long)), 0)
    return logged["train_loss"], method


def test_simclr_is_the_m2_case_of_polyview():
    views = [torch.randn(6, 3, 28, 28), torch.randn(6, 3, 28, 28)]
    simclr, _ = _step_loss(["method.name=simclr"], views)
    for objective in ("geometric", "arithmetic", "multicrop"):
        poly, _ = _step_loss(["method.name=polyview", f"method.objective={objective}"], views)
        torch.testing.assert_close(poly, simclr)


def test_polyview_step_uses_all_m_views():
    from ssl_suite.losses import PolyViewLoss

    views = [torch.randn(4, 3, 28, 28) for _ in range(4)]
    loss, method = _step_loss(["method.name=polyview", "data.num_views=4", "method.temperature=0.3"], views)
    z = method.projection_head(method.backbone(torch.cat(views))).chunk(4)
    torch.testing.assert_close(loss, PolyViewLoss("geometric", 0.3)(z))


def test_simclr_rejects_more_than_two_views():
    import pytest

    from ssl_suite.errors import UserError

    with pytest.raises(UserError, match="takes 2 view.*num_views=3; use method.name=polyview"):
        load_config(None, ["model.name=vit_nano_patch7_28_sigmoid", "data.num_views=3"])
