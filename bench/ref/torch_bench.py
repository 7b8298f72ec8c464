#!/usr/bin/python3
"""torch_bench.py - the PyTorch peer of `freeair bench`, for bench/engine_vs_torch.sh.

Runs one configuration (arch, mode, batch, size, precision, threads) with the
same recipe as the engine's bench command and prints ONE JSON line with the
same keys (images_per_s, peak_rss_mib, ...), so the shell script can pair the
two. Also measures the matmul peak (--matmul fp32|bf16) and counts FLOPs of a
torchvision model (--flops).

Recipe (mirrors src/cli/cmd_bench.c): torchvision model, random init, one
output; inference = eval mode, torch.inference_mode(), forward; training =
train mode, forward + BCE-with-logits (+0.4 x aux for Inception) + backward +
SGD(momentum 0.9, weight decay 1e-4). bf16 = torch.autocast("cpu",
dtype=torch.bfloat16) with fp32 master weights, as PyTorch users run it.
Run it with Debian's /usr/bin/python3 (PyTorch 1.13), or with a venv's python
for another release.
"""
import argparse
import json
import resource
import sys
import time

import torch
import torchvision


def build(arch, train):
    kw = {"num_classes": 1}
    if arch == "inception_v3":
        kw.update(aux_logits=True, init_weights=True)
    m = getattr(torchvision.models, arch)(**kw)
    m.train(train)
    return m


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def count_flops(arch, size):
    """Multiply-adds x 2 of conv and linear layers for one image, forward.

    Element-wise ops (BN, ReLU, pooling, add, concat) are not counted: they are
    memory-bound and a few percent of the arithmetic. Training is counted as 3x
    forward (forward, backward data, backward weights)."""
    m = build(arch, False)
    total = [0]

    def conv_hook(mod, inp, out):
        kh, kw = mod.kernel_size
        cin = mod.in_channels // mod.groups
        total[0] += 2 * out.numel() * cin * kh * kw

    def lin_hook(mod, inp, out):
        total[0] += 2 * out.numel() * mod.in_features

    for mod in m.modules():
        if isinstance(mod, torch.nn.Conv2d):
            mod.register_forward_hook(conv_hook)
        elif isinstance(mod, torch.nn.Linear):
            mod.register_forward_hook(lin_hook)
    with torch.inference_mode():
        m(torch.zeros(1, 3, size, size))
    return total[0]


def matmul_peak(prec, n, iters):
    dt = torch.bfloat16 if prec == "bf16" else torch.float32
    a = torch.randn(n, n).to(dt)
    b = torch.randn(n, n).to(dt)
    for _ in range(2):
        torch.matmul(a, b)
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch")
    ap.add_argument("--mode", default="infer", choices=["infer", "train"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--matmul", choices=["fp32", "bf16"])
    ap.add_argument("--flops", action="store_true")
    ap.add_argument("--import-rss", action="store_true",
                    help="peak RSS after importing torch and torchvision only")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    peer = "torch-" + torch.__version__
    if a.matmul:
        g = matmul_peak(a.matmul, 2048, 5)
        print(json.dumps({"event": "matmul", "peer": peer, "precision": a.matmul,
                          "n": 2048, "gflops": round(g, 2)}))
        return 0
    if a.import_rss:
        print(json.dumps({"event": "import_rss", "peer": peer, "peak_rss_mib": round(peak_rss_mib(), 2)}))
        return 0
    size = a.size or (299 if a.arch == "inception_v3" else 224)
    if a.flops:
        f = count_flops(a.arch, size)
        print(json.dumps({"event": "flops", "arch": a.arch, "size": size,
                          "fwd_flops_per_image": f}))
        return 0
    train = a.mode == "train"
    m = build(a.arch, train)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    m = m.to(memory_format=fmt)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(a.batch, 3, size, size, generator=g) * 4 - 2).contiguous(memory_format=fmt)
    y = (torch.arange(a.batch) % 2).float().unsqueeze(1)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    lossf = torch.nn.BCEWithLogitsLoss()
    bf16 = a.precision == "bf16"

    def step():
        if train:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = m(x)
                if isinstance(out, tuple):  # InceptionOutputs(logits, aux_logits)
                    loss = lossf(out[0].float(), y) + 0.4 * lossf(out[1].float(), y)
                else:
                    loss = lossf(out.float(), y)
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                m(x)

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    dt = time.perf_counter() - t0
    ips = a.iters * a.batch / dt
    print(json.dumps({"event": "bench", "peer": peer, "arch": a.arch, "mode": a.mode,
                      "precision": a.precision, "batch": a.batch, "size": size,
                      "iters": a.iters, "warmup": a.warmup, "threads": a.threads,
                      "channels_last": a.channels_last, "seconds": round(dt, 6),
                      "images_per_s": round(ips, 4), "ms_per_image": round(1000 / ips, 4),
                      "peak_rss_mib": round(peak_rss_mib(), 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
