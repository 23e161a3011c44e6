"""How close the body backbone's convolutions run to this CPU's best convolution rate, and the
highest ratio over the plain path that an exact float32 torch path could reach here.

Full-size HRNet-W48 body backbone (stand-in weights; speed does not depend on them), CPU, 2 threads:

- ``plain``: the module as MMHuman3D runs it (channels-first, BatchNorms unfused, ``no_grad``);
- ``packed``: our CPU rewrite (:func:`expose_cli.models.cpu_fusion.pack_convolutions`).

For each, the achieved rate is the convolutions' arithmetic (2 x multiply-adds, counted from the
layer shapes) over the backbone's whole time, so it is a lower bound of the kernels' own rate. The
best rate is the fastest of a few large prepacked convolutions on this CPU, the kernels at their
most efficient. ``ceiling`` = plain time / (arithmetic / best rate): the ratio if every convolution
ran at the best rate and nothing else took any time. Minor page faults per call show the cost of
large fresh allocations (glibc maps tensors of 32 MiB and more freshly on every call).

Interleaved repeats, medians, as every speed figure here.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from conditions import conditions  # benchmarks/conditions.py
from torch import nn

from expose_cli.models.backbones.hrnet import HRNetExpose
from expose_cli.models.cpu_fusion import PackedConv2d, pack_convolutions

#: Large convolutions (batch, in, out, size, kernel) whose best rate stands for the CPU's.
REFERENCE_CONVS = ((8, 512, 512, 16, 3), (8, 256, 256, 32, 3), (8, 1024, 1024, 16, 1))


def conv_flops(module: nn.Module, x: torch.Tensor) -> int:
    """Floating-point operations (2 per multiply-add) of every ``nn.Conv2d`` in one forward of ``x``."""
    total = 0

    def count(conv: nn.Conv2d, _args, out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1] * out.numel()

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def minor_faults(run) -> int:
    """Minor page faults of one call of ``run`` (after one warm-up call)."""
    run()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    run()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def best_conv_rate(repeats: int) -> float:
    """The fastest GFLOP/s of the reference convolutions, prepacked as the packed path runs them."""
    rates = []
    for batch, cin, cout, size, k in REFERENCE_CONVS:
        conv = nn.Conv2d(cin, cout, k, 1, k // 2, bias=False).eval()
        x = torch.randn(batch, cin, size, size).contiguous(memory_format=torch.channels_last)
        packed = PackedConv2d(conv, None, False, list(x.shape))
        packed(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            packed(x)
            times.append(time.perf_counter() - t0)
        rates.append(2 * cin * k * k * cout * batch * size * size / statistics.median(times) / 1e9)
    return max(rates)


def bench_batch(module: nn.Module, size: int, repeats: int, best: float) -> None:
    x = torch.randn(size, 3, 256, 256)
    x_last = x.contiguous(memory_format=torch.channels_last)
    packed = pack_convolutions(module, x_last)
    gflop = conv_flops(module, x[:1]) / 1e9  # per image
    paths = {"plain": lambda: module(x), "packed": lambda: packed(x_last)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    faults = {name: minor_faults(run) for name, run in paths.items()}
    for _ in range(repeats):
        for name, run in paths.items():
            t0 = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t0) / size)
    plain_s = statistics.median(times["plain"])
    for name in paths:
        s = statistics.median(times[name])
        print(f"{size:5d} {name:7s} {s:8.4f} {gflop / s:9.1f} {plain_s / s:8.2f} {faults[name]:12d}")
    print(f"{size:5d} ceiling {gflop / best:8.4f} {best:9.1f} {plain_s * best / gflop:8.2f}"
          f"   (every convolution at the best rate, nothing else)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    module = HRNetExpose().eval()
    with torch.no_grad():
        best = best_conv_rate(args.repeats)
        print(f"{conditions(torch.get_num_threads())}; torch {torch.__version__}; HRNet-W48 body backbone, "
              f"median of {args.repeats} interleaved repeats; best convolution rate {best:.1f} GFLOP/s")
        print(f"{'batch':>5s} {'path':7s} {'s/image':>8s} {'GFLOP/s':>9s} {'x plain':>8s} {'page faults':>12s}")
        for size in (int(b) for b in args.batch.split(",")):
            bench_batch(module, size, args.repeats, best)


if __name__ == "__main__":
    main()
