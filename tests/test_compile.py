"""trainer.compile: compiled blocks train, checkpoint and fail exactly like eager ones."""

import pytest
import torch

from ssl_suite.compilation import wants_compile
from ssl_suite.errors import UserError
from ssl_suite.train import pretrain
from tests.test_reliability import Poison, config


def test_auto_compiles_on_cuda_only_and_bad_values_are_one_line(fake_fashion_mnist, tmp_path):
    assert wants_compile("auto", "cuda") and not wants_compile("auto", "cpu")
    assert wants_compile(True, "cpu") and not wants_compile(False, "cuda")
    with pytest.raises(UserError, match=r"trainer.compile='sometimes': expected one of auto, True, False"):
        config(fake_fashion_mnist, tmp_path, "trainer.compile=sometimes")


def test_compiled_run_keeps_checkpoint_names_and_the_guard_still_names_the_block(fake_fashion_mnist, tmp_path):
    eager = pretrain(config(fake_fashion_mnist, tmp_path / "eager", "trainer.max_steps=2"), limit_val_batches=1)
    compiled = pretrain(
        config(fake_fashion_mnist, tmp_path / "compiled", "trainer.max_steps=2", "trainer.compile=true"),
        limit_val_batches=1,
    )
    keys = [torch.load(p, weights_only=True, map_location="cpu")["state_dict"].keys() for p in (eager, compiled)]
    assert list(keys[0]) == list(keys[1])  # Module.compile in place: no _orig_mod prefixes
    # Step 1 is not a logging step (every 2), so its forward runs the compiled blocks, unhooked:
    # the guard finds the block by replaying the step eagerly.
    with pytest.raises(UserError, match=r"non-finite attention output \(backbone.blocks.0.attn\) at step 1 \(simclr\)"):
        pretrain(
            config(
                fake_fashion_mnist,
                tmp_path / "poisoned",
                "trainer.max_steps=3",
                "trainer.compile=true",
                "trainer.log_every_n_steps=2",
            ),
            callbacks=[Poison(1)],
            limit_val_batches=1,
        )
