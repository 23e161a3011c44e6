"""The CPU rewrite of the backbones (BatchNorm folded, convolutions prepacked with their ReLU and
residual sums fused) gives the plain module's outputs and fuses only where nothing else reads the
convolution's own output."""

from __future__ import annotations

import torch
from torch import nn

from expose_cli.models.cpu_fusion import PackedConv2d, can_pack, pack_convolutions


class Patterns(nn.Module):
    """Every pattern the rewrite meets, plus two it must leave alone."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.a = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 8, 1)
        self.c = nn.Conv2d(8, 8, 3, 1, 1)
        self.shared = nn.Conv2d(8, 8, 1)
        self.d = nn.Conv2d(8, 8, 3, 1, 1)
        self.e = nn.Conv2d(8, 8, 3, 1, 1)
        self.unused = nn.Conv2d(8, 8, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)                        # conv (+BN) -> ReLU
        y = self.relu(self.bn_a(self.a(x)) + x)  # conv + identity -> ReLU
        y = y + self.b(y)                       # other + conv, no ReLU
        s = self.shared(y)                      # its output read twice: the sum must not be fused
        z = self.relu(s + self.c(y)) * s       # s is read after the sum: not written into
        z = self.relu(self.d(z) + self.e(z))    # a fresh operand read by nothing later: written into
        self.unused(z)                          # dead code
        return z


def randomised(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return module.eval()


def test_packed_module_gives_the_plain_modules_outputs_and_fuses_only_what_it_may():
    assert can_pack(torch.device("cpu"))
    plain = randomised(Patterns())
    x = torch.randn(2, 3, 20, 24)
    packed = pack_convolutions(plain, x.contiguous(memory_format=torch.channels_last))
    with torch.inference_mode():
        torch.testing.assert_close(packed(x.contiguous(memory_format=torch.channels_last)), plain(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(packed(x[:1].contiguous(memory_format=torch.channels_last)), plain(x[:1]),
                                   atol=1e-5, rtol=1e-5)  # another batch size than the one packed for
    convs = [m for m in packed.modules() if isinstance(m, PackedConv2d)]
    assert [m.relu for m in convs] == [True, True, False, False, True, True, False]  # stem, a, b, shared, c, d, e
    # Only d's sum may overwrite its operand (e's output): a's and b's operand is their own input, c's is read later.
    assert [m.overwrite for m in convs] == [False, False, False, False, False, True, False]
    nodes = list(packed.graph.nodes)
    assert not any(n.op == "call_module" and isinstance(packed.get_submodule(n.target), (nn.Conv2d, nn.ReLU, nn.BatchNorm2d))
                   for n in nodes)
    sums = [n for n in nodes if n.op == "call_module" and len(n.args) == 2]
    assert len(sums) == 4  # a (+x), b (+y), c (+s) and d (+e); shared's own output stays a separate tensor
    assert sum(n.op == "call_function" for n in nodes) == 1  # only the product is left


class InputSum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.relu(x)) + x  # x is read by nothing after the sum, but it is the caller's


def test_packed_sum_never_writes_into_the_callers_input():
    x = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    original = x.clone()
    packed = pack_convolutions(InputSum().eval(), x)
    assert not any(m.overwrite for m in packed.modules() if isinstance(m, PackedConv2d))
    with torch.inference_mode():
        packed(x)
    assert torch.equal(x, original)
