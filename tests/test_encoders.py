"""Which encoder export and eval take: I-JEPA's EMA target by default ("We use the
target-encoder for evaluation", Assran et al. 2023, https://arxiv.org/abs/2301.08243, A.1),
BYOL's online one (Grill et al. 2020), either on request."""

import pytest
import torch
from safetensors.torch import load_file

from ssl_suite.cli import main
from ssl_suite.config import load_config
from ssl_suite.eval.run import backbone_from
from ssl_suite.export import export_backbone
from ssl_suite.train import pretrain
from tests.conftest import TINY_OBJECTIVES

IJEPA = [
    *TINY_OBJECTIVES["ijepa"],
    "model.name=vit_nano_patch4_28_sigmoid",
    "method.momentum_base=0.5",
]


@pytest.fixture(scope="module")
def ijepa_run(tmp_path_factory):
    from tests.conftest import write_fake_fashion_mnist

    root = tmp_path_factory.mktemp("data")
    write_fake_fashion_mnist(root)
    out = tmp_path_factory.mktemp("run")
    args = [
        "trainer.accelerator=cpu",
        "data.num_workers=0",
        "data.batch_size=16",
        "data.augment_on=device",
        "trainer.max_steps=3",
        "trainer.max_epochs=1",
        f"data.root={root}",
        f"output_dir={out}",
        *IJEPA,
    ]
    return pretrain(load_config(None, args), limit_val_batches=1), args


def _state(ckpt, prefix):
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def test_ijepa_export_is_the_target_encoder_by_default(ijepa_run, tmp_path):
    ckpt, _ = ijepa_run
    online, target = _state(ckpt, "backbone."), _state(ckpt, "target.model.vit.")
    assert set(online) == set(target)
    assert any(not torch.equal(online[k], target[k]) for k in online)  # trained: the two differ
    done = export_backbone(ckpt, tmp_path / "target.safetensors")
    out = done.path
    assert done.encoder == "target"
    exported = load_file(str(out))
    assert set(exported) == set(target)
    assert all(torch.equal(exported[k], target[k]) for k in target)
    assert main(["export", str(ckpt), str(tmp_path / "online.safetensors"), "--encoder", "online"]) == 0
    exported = load_file(str(tmp_path / "online.safetensors"))
    assert all(torch.equal(exported[k], online[k]) for k in online)


def test_ijepa_eval_probes_the_target_encoder_and_says_so(ijepa_run):
    ckpt, args = ijepa_run
    for choice, prefix in (("auto", "target.model.vit."), ("online", "backbone.")):
        model, identity = backbone_from(load_config(None, [*args, f"eval.encoder={choice}"]), str(ckpt))
        expected = _state(ckpt, prefix)
        assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
        assert identity.endswith(":target" if choice == "auto" else ":online")  # separate feature caches


def test_byol_keeps_the_online_encoder(fake_fashion_mnist, tmp_path):
    args = [
        "trainer.accelerator=cpu",
        "data.num_workers=0",
        "data.batch_size=16",
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
        "method.name=byol",
        "method.proj_hidden_dim=32",
        "method.pred_hidden_dim=32",
        "method.proj_output_dim=16",
        "model.name=vit_nano_patch7_28_sigmoid",
        "method.momentum_base=0.5",
        f"data.root={fake_fashion_mnist}",
        f"output_dir={tmp_path}",
    ]
    ckpt = pretrain(load_config(None, args), limit_val_batches=1)
    model, _ = backbone_from(load_config(None, args), str(ckpt))
    assert model.ssl_encoder == "online"
    online = _state(ckpt, "backbone.")
    assert all(torch.equal(v, online[k]) for k, v in model.state_dict().items())
    target, _ = backbone_from(load_config(None, [*args, "eval.encoder=target"]), str(ckpt))
    assert all(torch.equal(v, _state(ckpt, "target.model.0.")[k]) for k, v in target.state_dict().items())


def test_an_encoder_the_checkpoint_lacks_is_one_line(fake_fashion_mnist, tmp_path, capsys):
    args = [
        "trainer.accelerator=cpu",
        "data.num_workers=0",
        "data.batch_size=16",
        "trainer.max_steps=1",
        "trainer.max_epochs=1",
        "model.name=vit_nano_patch7_28_sigmoid",
        f"data.root={fake_fashion_mnist}",
        f"output_dir={tmp_path}",
    ]
    ckpt = pretrain(load_config(None, args), limit_val_batches=1)
    assert main(["export", str(ckpt), str(tmp_path / "x.safetensors"), "--encoder", "target"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no target encoder" in err
