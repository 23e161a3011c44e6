"""Random test networks (expose_cli.testing.checkpoints): reproducible from their seed alone."""

from __future__ import annotations

import torch

from expose_cli.testing.checkpoints import random_net


def test_random_net_uses_its_own_generator():
    torch.manual_seed(999)
    a = random_net("hand", seed=3, small=True).state_dict()
    after_a = torch.rand(4)
    torch.manual_seed(12345)  # a different global state: the same network all the same
    b = random_net("hand", seed=3, small=True).state_dict()
    after_b = torch.rand(4)
    assert not torch.equal(after_a, after_b)  # the global RNG was not re-seeded (with `seed`)
    c = random_net("hand", seed=4, small=True).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    changed = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], c[k])]
    assert any(k.endswith("bias") and "fc" in k or "regressor" in k for k in changed)
    float_params = [k for k, _ in random_net("hand", seed=3, small=True).named_parameters()]
    assert set(float_params) <= set(changed)  # every parameter is drawn from the seed
