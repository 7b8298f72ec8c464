#!/usr/bin/env python3
"""ops_torch.py OUTDIR - PyTorch reference for single engine ops
(tests/tools/engine_op_check.c reads what this writes; test_ops_torch.sh runs
both).

For each case writes OUTDIR/<case>.safetensors with metadata describing the
op (keys as engine_op_check expects) and tensors computed by PyTorch itself
(float64, so the reference carries no rounding of its own):
  x            input, N x C x H x W
  R            random weights of the loss L = sum(y * R)
  y            op(x)
  dx           dL/dx
  p.<name>     parameters (weight, bias, running_mean, running_var)
  g.<name>     dL/dparameter
  s.<name>     buffers after the forward (BN training: running stats)
BCE and SGD cases hold their own tensors (see bce_case, sgd_case).

This pins down PyTorch semantics independently of the naive kernels in
tests/unit/test_engine_ops.c: ceil_mode windows, count_include_pad divisors,
-inf padding of max pooling, BN's unbiased running variance, grouped and
dilated convolution, SGD's first-step momentum and nesterov/dampening.
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F


def save(path, tensors, meta):
    header, blobs, off = {"__metadata__": {k: str(v) for k, v in meta.items()}}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.int64:
            dtype, raw = "I64", t.numpy().tobytes()
        else:
            dtype, raw = "F32", t.to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


G = torch.Generator().manual_seed(20240607)


def rnd(*shape, lo=-1.0, hi=1.0):
    # Values are rounded to float32 first: the engine reads float32 files,
    # so the reference must see exactly the same numbers.
    return (torch.rand(*shape, generator=G, dtype=torch.float64) * (hi - lo) + lo).float().double()


def run(outdir, name, meta, x, fn, params, buffers=None):
    """fn(x, params) -> y; params: dict name -> leaf tensor (float64)."""
    x = x.clone().requires_grad_(True)
    ps = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    y = fn(x, ps)
    R = rnd(*y.shape)
    (y * R).sum().backward()
    t = {"x": x, "R": R, "y": y, "dx": x.grad}
    for k, v in params.items():
        t["p." + k] = v
        t["g." + k] = ps[k].grad
    for k, v in (buffers or {}).items():
        t[k] = v
    save(os.path.join(outdir, name + ".safetensors"), t, meta)


def conv_case(outdir, name, n, c, h, w, out, k, s, p, d, groups, bias):
    meta = {"op": "conv", "out": out, "k_h": k[0], "k_w": k[1], "s_h": s[0], "s_w": s[1], "p_h": p[0],
            "p_w": p[1], "d_h": d[0], "d_w": d[1], "groups": groups, "bias": int(bias)}
    params = {"weight": rnd(out, c // groups, k[0], k[1], lo=-0.5, hi=0.5)}
    if bias:
        params["bias"] = rnd(out, lo=-0.5, hi=0.5)

    def fn(x, ps):
        return F.conv2d(x, ps["weight"], ps.get("bias"), stride=s, padding=p, dilation=d, groups=groups)

    run(outdir, name, meta, rnd(n, c, h, w), fn, params)


def pool_case(outdir, name, n, c, h, w, kind, k, s, p, ceil, include_pad=True):
    meta = {"op": kind, "k_h": k, "k_w": k, "s_h": s, "s_w": s, "p_h": p, "p_w": p, "ceil": int(ceil),
            "include_pad": int(include_pad)}

    def fn(x, ps):
        if kind == "maxpool":
            return F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        return F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include_pad)

    run(outdir, name, meta, rnd(n, c, h, w), fn, {})


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    conv_case(outdir, "conv_grouped_strided_dilated", 2, 4, 9, 8, 6, (3, 2), (2, 1), (2, 1), (2, 1), 2, True)
    conv_case(outdir, "conv_depthwise", 2, 8, 7, 7, 8, (3, 3), (2, 2), (1, 1), (1, 1), 8, False)
    conv_case(outdir, "conv_7x1", 1, 5, 9, 6, 4, (7, 1), (1, 1), (3, 0), (1, 1), 1, True)
    conv_case(outdir, "conv_resnext_group", 2, 32, 5, 5, 32, (3, 3), (1, 1), (1, 1), (1, 1), 8, False)
    # BN: F.batch_norm updates the running stats in place; keep the copies
    # it updated (s.*) next to the values before (p.*).
    for name, training in (("bn_train", True), ("bn_eval", False)):
        n, c, h, w = 3, 20, 4, 3
        params = {"weight": rnd(c, lo=0.5, hi=1.5), "bias": rnd(c, lo=-0.5, hi=0.5)}
        rm, rv = rnd(c, lo=-0.3, hi=0.3), rnd(c, lo=0.5, hi=1.5)
        m, v = rm.clone(), rv.clone()

        def fn(x, ps, m=m, v=v, training=training):
            return F.batch_norm(x, m, v, ps["weight"], ps["bias"], training=training, momentum=0.1, eps=1e-5)

        meta = {"op": "bn", "training": int(training), "eps": 1e-5, "momentum": 0.1}
        x = rnd(n, c, h, w)
        xx = x.clone().requires_grad_(True)
        ps = {k: t.clone().requires_grad_(True) for k, t in params.items()}
        y = fn(xx, ps)
        R = rnd(*y.shape)
        (y * R).sum().backward()
        save(os.path.join(outdir, name + ".safetensors"),
             {"x": x, "R": R, "y": y, "dx": xx.grad, "p.weight": params["weight"], "p.bias": params["bias"],
              "g.weight": ps["weight"].grad, "g.bias": ps["bias"].grad, "p.running_mean": rm,
              "p.running_var": rv, "s.running_mean": m, "s.running_var": v}, meta)
    pool_case(outdir, "maxpool_3s2p1_ceil", 2, 3, 8, 8, "maxpool", 3, 2, 1, True)
    pool_case(outdir, "maxpool_2s2_ceil_odd", 1, 4, 7, 7, "maxpool", 2, 2, 0, True)
    pool_case(outdir, "maxpool_3s2p1_floor", 2, 3, 9, 9, "maxpool", 3, 2, 1, False)
    pool_case(outdir, "avgpool_3s2p1_include", 2, 3, 8, 8, "avgpool", 3, 2, 1, False, True)
    pool_case(outdir, "avgpool_3s2p1_exclude", 2, 3, 8, 8, "avgpool", 3, 2, 1, False, False)
    pool_case(outdir, "avgpool_3s2p1_ceil_exclude", 1, 3, 9, 9, "avgpool", 3, 2, 1, True, False)
    pool_case(outdir, "avgpool_3s1p1_include", 2, 3, 6, 5, "avgpool", 3, 1, 1, False, True)
    pool_case(outdir, "avgpool_2s2_floor_odd", 2, 4, 7, 7, "avgpool", 2, 2, 0, False, True)
    # global average pooling + linear (ResNet/DenseNet head)
    params = {"weight": rnd(3, 20, lo=-0.5, hi=0.5), "bias": rnd(3, lo=-0.5, hi=0.5)}
    run(outdir, "gap_linear", {"op": "gap_linear", "out": 3}, rnd(2, 20, 3, 4),
        lambda x, ps: F.linear(F.adaptive_avg_pool2d(x, 1).flatten(1), ps["weight"], ps["bias"])[:, :, None, None],
        params)
    run(outdir, "relu", {"op": "relu"}, rnd(2, 5, 3, 3), lambda x, ps: F.relu(x), {})
    # Inception's transform_input, as torchvision writes it
    def transform_input(x, ps):
        x0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((x0, x1, x2), 1)
    run(outdir, "transform_input", {"op": "affine"}, rnd(2, 3, 4, 4), transform_input, {})

    # BCE with logits, mean, pos_weight
    logits, target = rnd(9, lo=-6, hi=6), torch.tensor([1, 0, 1, 1, 0, 0, 1, 0, 1], dtype=torch.float64)
    for pw in (1.0, 3.0):
        lg = logits.clone().requires_grad_(True)
        loss = F.binary_cross_entropy_with_logits(lg, target, pos_weight=torch.tensor(pw, dtype=torch.float64))
        loss.backward()
        save(os.path.join(outdir, "bce_pw%g.safetensors" % pw),
             {"logits": logits, "target": target, "loss": loss.reshape(1), "dlogits": lg.grad},
             {"op": "bce", "pos_weight": pw})

    # torch.optim.SGD trajectories in float32 (the engine's precision)
    for name, kw in (("sgd_momentum_wd", dict(momentum=0.9, weight_decay=1e-2)),
                     ("sgd_nesterov", dict(momentum=0.8, weight_decay=5e-4, nesterov=True)),
                     ("sgd_dampening", dict(momentum=0.9, dampening=0.5)),
                     ("sgd_plain", dict())):
        p0 = rnd(4, 5).float()
        p = p0.clone().requires_grad_(True)
        opt = torch.optim.SGD([p], lr=0.1, **kw)
        grads, lrs = [], [0.1, 0.1, 0.05, 0.05, 0.01]
        for lr in lrs:
            for gr in opt.param_groups:
                gr["lr"] = lr
            g = rnd(4, 5).float()
            grads.append(g)
            p.grad = g.clone()
            opt.step()
        st = opt.state[p]
        t = {"p0": p0, "grads": torch.stack(grads), "lrs": torch.tensor(lrs), "p": p.detach()}
        if st.get("momentum_buffer") is not None:
            t["momentum"] = st["momentum_buffer"]
        meta = {"op": "sgd", "momentum": kw.get("momentum", 0.0), "dampening": kw.get("dampening", 0.0),
                "weight_decay": kw.get("weight_decay", 0.0), "nesterov": int(kw.get("nesterov", False))}
        save(os.path.join(outdir, name + ".safetensors"), t, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
