#!/usr/bin/env python3
"""torch_parity.py ARCH OUTDIR [options] - PyTorch reference for the engine parity
tests (tests/tools/parity_runner.c reads what this writes).

Builds torchvision's ARCH with one output and random weights, makes the batch
norm statistics non-trivial (random affine, running statistics calibrated on a
random batch and then perturbed, random num_batches_tracked), and writes:

  OUTDIR/weights.safetensors  the state_dict (F32, or --weights-dtype BF16/F16;
                              num_batches_tracked as I64)
  OUTDIR/data.safetensors     input, target, eval_logits, eval_logits_bf16
                              (torch.autocast bf16), eval_logits_fp64; with
                              --train also
                              train_logits (+ train_aux_logits), loss,
                              grad.<param> for every parameter, state.<buffer>
                              (running stats and counters after the training
                              forward), traj (the loss before each of --steps
                              SGD steps from the same start), and the same
                              from a channels_last run as the fp32 noise
                              level: noise.grad.<param>, noise.grad_l2,
                              noise.state.<buffer>, traj_alt; and
                              flip.grad.<param>, the gradient change if every
                              near-zero ReLU input went the other way;
                              with --eval-grad, egrad.<param>: the exact
                              (fp64) gradient of the loss with BN in eval
                              mode (running statistics, as when fine-tuning
                              with frozen BN), egrad32.<param> PyTorch fp32's,
                              and egrad_torch.<param> the relative distance
                              between the two.

Inception: transform_input on (as torchvision's pretrained default), dropout
0, loss = BCE(logits) + 0.4 * BCE(aux_logits). safetensors is written by hand
(json + struct + numpy) because the safetensors package is not in Debian.
"""
import argparse
import copy
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as tvm


class _ReLU(torch.autograd.Function):
    """ReLU with the same values and gradient as torch's, whose backward can
    also toggle the "ambiguous" elements (|x| below FLIP_MARGIN x the
    tensor's std), i.e. take the other side of every ReLU decision that a
    second fp32 implementation could make differently. The gradient change
    this causes is the flip allowance (flip.grad.*)."""
    toggle = False

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        mask = x > 0
        if _ReLU.toggle:
            mask = mask ^ (x.abs() < FLIP_MARGIN * x.detach().float().std())
        return g * mask


# Forward differences between fp32 implementations stay well below 1e-4 of
# an activation's scale (1e-6 at the top of resnet18, ~1e-5 in deep chaotic ones).
FLIP_MARGIN = 1e-4


def _relu(x, inplace=False):  # torchvision calls F.relu (nn.ReLU does too)
    return _ReLU.apply(x)


F.relu = _relu


def save_safetensors(path, tensors, metadata=None, dtype_override=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.int64:
            dtype, raw = "I64", t.numpy().tobytes()
        elif dtype_override == "BF16" and t.is_floating_point():
            dtype, raw = "BF16", t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        elif dtype_override == "F16" and t.is_floating_point():
            dtype, raw = "F16", t.to(torch.float16).numpy().tobytes()
        else:
            dtype, raw = "F32", t.to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def build(arch, size, aux):
    if arch == "inception_v3":
        return tvm.inception_v3(num_classes=1, aux_logits=aux, init_weights=True, transform_input=True,
                                dropout=0.0)
    return getattr(tvm, arch)(num_classes=1)


def randomise_bn(net, gen, calib):
    """Random BN affine, running stats from a calibration batch (so that deep
    eval-mode networks stay in a sane range), then perturbed."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.empty_like(m.weight).uniform_(0.6, 1.4, generator=gen))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            m.momentum = None  # cumulative average: one batch sets the statistics
            m.reset_running_stats()
        net.train()
        net(calib)
        for m in bns:
            m.momentum = 0.1
            std = m.running_var.sqrt()
            m.running_mean.add_(0.2 * std * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.7, 1.4, generator=gen))
            m.num_batches_tracked.fill_(int(torch.randint(0, 1000, (1,), generator=gen)))


def logits_of(out):
    if isinstance(out, tuple):  # InceptionOutputs in training mode
        return out[0], out[1]
    return out, None


def loss_of(out, target):
    logits, aux = logits_of(out)
    loss = F.binary_cross_entropy_with_logits(logits.reshape(-1), target)
    if aux is not None:
        loss = loss + 0.4 * F.binary_cross_entropy_with_logits(aux.reshape(-1), target)
    return loss, logits, aux


def rel_err(a, b):
    """max |a - b| / max |b| (0 when b is all zeros and a equals it)."""
    scale = float(b.abs().max()) if b.numel() else 0.0
    diff = float((a.double() - b.double()).abs().max()) if b.numel() else 0.0
    return torch.tensor(diff / scale if scale > 0 else diff, dtype=torch.float32)


def one_step(net, start, x, target):
    """Load start, one training forward + backward; copies of everything."""
    net.load_state_dict(start)
    net.train()
    net.zero_grad()
    loss, logits, aux = loss_of(net(x), target)
    loss.backward()
    trainable = {n for n, _ in net.named_parameters()}
    return {"loss": loss.detach().clone(), "logits": logits.detach().clone(),
            "aux": None if aux is None else aux.detach().clone(),
            "grads": {n: p.grad.detach().clone().contiguous() for n, p in net.named_parameters()},
            "state": {n: t.detach().clone().contiguous() for n, t in net.state_dict().items() if n not in trainable}}


def trajectory(net, start, x, target, a):
    """Loss before each of a.steps SGD steps from start."""
    net.load_state_dict(start)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay,
                          nesterov=a.nesterov)
    traj = []
    for _ in range(a.steps):
        opt.zero_grad()
        loss, _, _ = loss_of(net(x), target)
        loss.backward()
        opt.step()
        traj.append(loss.item())
    return torch.tensor(traj, dtype=torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch")
    ap.add_argument("outdir")
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--eval-grad", action="store_true",
                    help="exact gradients with BN in eval mode (well conditioned: a strict check)")
    ap.add_argument("--steps", type=int, default=10)
    # 1e-3: at 1e-2 a batch of two is fitted so fast that the trajectory is
    # chaotic (PyTorch itself drifts 1e-2 after a 1e-6 weight perturbation).
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--nesterov", action="store_true")
    ap.add_argument("--aux", type=int, default=-1, help="inception aux head (default: on at size >= 299)")
    ap.add_argument("--weights-dtype", default="F32", choices=["F32", "BF16", "F16"])
    ap.add_argument("--perturb", default="",
                    help="add 1%% noise to this tensor in weights.safetensors only (the harness must then fail)")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(a.seed)
    size = a.size or (299 if a.arch == "inception_v3" else 224)
    aux = (a.aux if a.aux >= 0 else int(size >= 299)) if a.arch == "inception_v3" else 0
    gen = torch.Generator().manual_seed(a.seed + 1000)
    net = build(a.arch, size, bool(aux))
    randomise_bn(net, gen, torch.randn(4, 3, size, size, generator=gen))
    if a.weights_dtype != "F32":
        # The C side reads rounded weights: make the reference use them too.
        with torch.no_grad():
            rt = torch.bfloat16 if a.weights_dtype == "BF16" else torch.float16
            for t in net.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.to(rt).to(torch.float32))
    x = torch.randn(a.batch, 3, size, size, generator=gen)
    target = torch.tensor([float(i % 2 == 0) for i in range(a.batch)])
    os.makedirs(a.outdir, exist_ok=True)
    meta = {"arch": a.arch, "size": size, "batch": a.batch, "aux_logits": aux,
            "transform_input": int(a.arch == "inception_v3"), "lr": repr(a.lr), "momentum": repr(a.momentum),
            "weight_decay": repr(a.weight_decay), "nesterov": int(a.nesterov), "steps": a.steps if a.train else 0}
    start = copy.deepcopy(net.state_dict())
    saved = start
    if a.perturb:
        saved = copy.deepcopy(start)
        # Noise, not a scale: a conv followed by train-mode BN is scale invariant.
        w = saved[a.perturb]
        w.add_(0.01 * w.std() * torch.randn(w.shape, generator=torch.Generator().manual_seed(9)))
    save_safetensors(os.path.join(a.outdir, "weights.safetensors"), saved,
                     {"arch": a.arch, "transform_input": meta["transform_input"]}, a.weights_dtype)

    data = {"input": x, "target": target}
    net.eval()
    with torch.no_grad():
        data["eval_logits"] = net(x).reshape(a.batch, -1)
        # PyTorch's own bf16 inference: the reference for bf16 parity, since
        # a random deep network's bf16 error against fp32 is often larger
        # than 2e-2 of its logit scale in PyTorch too.
        with torch.autocast("cpu", dtype=torch.bfloat16):
            data["eval_logits_bf16"] = net(x).float().reshape(a.batch, -1)
        # The exact result (fp64): the runner requires the engine to be as
        # close to it as PyTorch's fp32 is (deep random networks put even
        # that beyond 1e-4 of the logit scale, e.g. resnext101_32x8d).
        data["eval_logits_fp64"] = copy.deepcopy(net).double()(x.double()).float().reshape(a.batch, -1)
    if a.train:
        # The reference run (NCHW) and a second, equally valid fp32 run in
        # channels_last, whose kernels round differently: their distance is
        # the resolution fp32 has on this problem ("noise.*"). Deep BN
        # networks at random init in training mode amplify rounding
        # exponentially with depth (gradient explosion), so for resnext50 at
        # 224 PyTorch's own fp32 gradients differ from fp64 by over 10% in
        # places; the runner allows max(1e-3, 5 x noise) per tensor.
        ref = one_step(net, start, x, target)
        alt = one_step(copy.deepcopy(net).to(memory_format=torch.channels_last), start,
                       x.contiguous(memory_format=torch.channels_last), target)
        data["loss"] = ref["loss"].reshape(1)
        data["train_logits"] = ref["logits"].reshape(a.batch, -1)
        data["noise.loss"] = rel_err(alt["loss"].reshape(1), ref["loss"].reshape(1)).reshape(1)
        data["noise.train_logits"] = rel_err(alt["logits"], ref["logits"]).reshape(1)
        if ref["aux"] is not None:
            data["train_aux_logits"] = ref["aux"].reshape(a.batch, -1)
            data["noise.train_aux_logits"] = rel_err(alt["aux"], ref["aux"]).reshape(1)
        num, den = 0.0, 0.0
        for n, g in ref["grads"].items():
            data["grad." + n] = g
            data["noise.grad." + n] = rel_err(alt["grads"][n], g).reshape(1)
            num += float((alt["grads"][n].double() - g.double()).pow(2).sum())
            den += float(g.double().pow(2).sum())
        data["noise.grad_l2"] = torch.tensor([(num / max(den, 1e-300)) ** 0.5])
        _ReLU.toggle = True
        flipped = one_step(net, start, x, target)
        _ReLU.toggle = False
        for n, g in ref["grads"].items():
            data["flip.grad." + n] = rel_err(flipped["grads"][n], g).reshape(1)
        for n, t in ref["state"].items():
            data["state." + n] = t
            if t.is_floating_point():
                data["noise.state." + n] = rel_err(alt["state"][n], t).reshape(1)
        data["traj"] = trajectory(net, start, x, target, a)
        data["traj_alt"] = trajectory(copy.deepcopy(net).to(memory_format=torch.channels_last), start,
                                      x.contiguous(memory_format=torch.channels_last), target, a)
    if a.eval_grad:
        # With running statistics BN is an affine map, so backward is well
        # conditioned (no division by batch variances of two images): unlike
        # the training-mode step above, fp32 is close to exact here, and the
        # runner holds every gradient to the 1e-3 without allowances
        # (against fp64 or PyTorch fp32, which share most ReLU decisions).
        grads = {}
        for dtype in (torch.float64, torch.float32):
            m = copy.deepcopy(net).to(dtype)
            m.load_state_dict(start)
            m.eval()
            m.zero_grad()
            out = m(x.to(dtype))
            F.binary_cross_entropy_with_logits(out.reshape(-1), target.to(dtype)).backward()
            grads[dtype] = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone()
                            for n, p in m.named_parameters()}
        for n, g in grads[torch.float64].items():
            data["egrad." + n] = g.float()
            data["egrad32." + n] = grads[torch.float32][n]
            data["egrad_torch." + n] = rel_err(grads[torch.float32][n], g).reshape(1)
    save_safetensors(os.path.join(a.outdir, "data.safetensors"), data, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
