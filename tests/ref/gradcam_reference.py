#!/usr/bin/env python3
"""gradcam_reference.py ARCH OUTDIR [options] - PyTorch reference for
`freeair cam` (tests/integration/test_cam_reference.sh).

Builds torchvision's ARCH with one output and random weights (batch-norm
statistics calibrated on a random batch and perturbed, so that a deep
eval-mode network stays in a sane range), and writes:

  OUTDIR/model.safetensors  a freeair checkpoint (state_dict + the metadata
                            train_load_checkpoint needs), written by hand with
                            json + struct + numpy (no safetensors package in
                            Debian)
  OUTDIR/input.png          a 16-bit grey SIZE x SIZE radiograph-like image
  OUTDIR/ref_<layer>_<method>.npy   the reference map at the layer's resolution
  OUTDIR/ref.json           logit, probability, layer shapes and map scales

Grad-CAM is computed the way pytorch-grad-cam does it, with hooks: a forward
hook on the layer's module keeps its output A and a tensor hook keeps dY/dA
where Y is the single logit; Grad-CAM weights are the spatial means of dY/dA,
Grad-CAM++ weights the closed form with second and third powers of the
gradients (pytorch-grad-cam's GradCAMPlusPlus, eps 1e-6); map =
relu(sum_k w_k A_k) divided by its maximum. DenseNet's "features" is the
output after norm5 *and* the ReLU that torchvision applies in forward() (an
in-place functional call, not a module), so for it the forward is written out
and the hook sits on the ReLU's output tensor.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def save_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": {k: str(v) for k, v in metadata.items()}}, [], 0
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


def preprocessing_of(binary):
    """The checkpoint's preprocessing text must equal the build's
    (aug_preprocessing_desc): read it out of the freeair binary."""
    data = open(binary, "rb").read()
    i = data.find(b"resize=square")
    if i < 0:
        sys.exit("gradcam_reference: no preprocessing description found in " + binary)
    return data[i:data.index(b"\0", i)].decode()


def build(arch):
    if arch == "inception_v3":
        # freeair's model_build default: transform_input off, aux head built
        return tvm.inception_v3(num_classes=1, aux_logits=True, transform_input=False, init_weights=True)
    return getattr(tvm, arch)(num_classes=1)


def randomise_bn(net, gen, calib):
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.empty_like(m.weight).uniform_(0.6, 1.4, generator=gen))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            m.momentum = None
            m.reset_running_stats()
        net.train()
        net(calib)
        for m in bns:
            m.momentum = 0.1
            std = m.running_var.sqrt()
            m.running_mean.add_(0.2 * std * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.7, 1.4, generator=gen))
    net.eval()


def radiograph(size, gen):
    """Smooth structure plus noise, 16-bit: something for the filters to see."""
    yy, xx = np.mgrid[0:size, 0:size] / float(size)
    r = torch.rand(6, generator=gen).numpy()
    img = (0.5 + 0.25 * np.sin(2 * np.pi * (xx * (1 + 3 * r[0]) + r[1]))
           * np.cos(2 * np.pi * (yy * (1 + 3 * r[2]) + r[3]))
           + 0.2 * np.exp(-((xx - r[4]) ** 2 + (yy - r[5]) ** 2) / 0.02))
    img += 0.05 * torch.randn(size, size, generator=gen).numpy()
    return np.clip(np.round(img * 65535), 0, 65535).astype(np.uint16)


def to_tensor(u16):
    x = torch.from_numpy(u16.astype(np.float32) / np.float32(65535.0))
    x = x.unsqueeze(0).repeat(3, 1, 1)
    m = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    return ((x - m) / s).unsqueeze(0)


def forward_with_hooks(net, arch, layer, x):
    """Logit and the layer's (activation, gradient), via hooks."""
    store = {}

    def keep(t):
        store["act"] = t.detach().clone()
        t.register_hook(lambda g: store.__setitem__("grad", g.detach().clone()))

    if arch.startswith("densenet") and layer == "features":
        feats = F.relu(net.features(x))  # not in place: the hook must see this tensor
        keep(feats)
        logit = net.classifier(torch.flatten(F.adaptive_avg_pool2d(feats, (1, 1)), 1))
    else:
        module = dict(net.named_modules())[layer]
        h = module.register_forward_hook(lambda mod, inp, out: keep(out))
        logit = net(x)
        h.remove()
    net.zero_grad()
    logit.reshape(-1)[0].backward()
    return logit.item(), store["act"][0].double().numpy(), store["grad"][0].double().numpy()


def cam_weights(method, act, grad):
    if method == "gradcam":
        return grad.mean(axis=(1, 2))
    g2 = grad ** 2
    g3 = g2 * grad
    sum_a = act.sum(axis=(1, 2))
    aij = g2 / (2 * g2 + sum_a[:, None, None] * g3 + 1e-6)
    aij = np.where(grad != 0, aij, 0)
    return (np.maximum(grad, 0) * aij).sum(axis=(1, 2))


def cam_map(method, act, grad):
    w = cam_weights(method, act, grad)
    m = np.maximum((w[:, None, None] * act).sum(axis=0), 0)
    scale = float(m.max())
    return (m / scale if scale > 0 else m), scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch")
    ap.add_argument("outdir")
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layers", default="", help="comma-separated (default: the freeair default layer)")
    ap.add_argument("--methods", default="gradcam,gradcam++")
    ap.add_argument("--freeair", required=True, help="freeair binary (for its preprocessing text)")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(a.seed)
    size = a.size or (299 if a.arch == "inception_v3" else 224)
    default_layer = {"inception_v3": "Mixed_7c"}.get(a.arch, "features" if a.arch.startswith("densenet") else "layer4")
    layers = [s for s in a.layers.split(",") if s] or [default_layer]
    gen = torch.Generator().manual_seed(a.seed + 1000)
    net = build(a.arch)
    randomise_bn(net, gen, torch.randn(2, 3, size, size, generator=gen))
    os.makedirs(a.outdir, exist_ok=True)
    meta = {"format": "freeair-checkpoint", "format_version": "1", "kind": "best", "arch": a.arch,
            "image_size": size, "preprocessing": preprocessing_of(a.freeair), "epoch": 0}
    img = radiograph(size, gen)
    Image.fromarray(img).save(os.path.join(a.outdir, "input.png"))
    back = np.asarray(Image.open(os.path.join(a.outdir, "input.png"))).astype(np.uint16)
    assert (back == img).all(), "16-bit PNG round trip failed"
    x = to_tensor(img)
    # A random head often saturates the logit (|logit| in the hundreds);
    # shrink it so the probability stays informative. Both sides use the
    # saved (shrunk) weights, so the comparison is unaffected.
    head = net.classifier if a.arch.startswith("densenet") else net.fc
    with torch.no_grad():
        logit0 = float(net(x).reshape(-1)[0])
        if abs(logit0) > 2:
            head.weight.mul_(2 / abs(logit0))
            head.bias.mul_(2 / abs(logit0))
    save_safetensors(os.path.join(a.outdir, "model.safetensors"), net.state_dict(), meta)
    out = {"arch": a.arch, "size": size, "layers": {}}
    for layer in layers:
        logit, act, grad = forward_with_hooks(net, a.arch, layer, x)
        out["logit"] = logit
        out["probability"] = 1 / (1 + np.exp(-logit))
        info = {"shape": list(act.shape), "scale": {}}
        for method in a.methods.split(","):
            m, scale = cam_map(method, act, grad)
            np.save(os.path.join(a.outdir, "ref_%s_%s.npy" % (layer, method)), m.astype(np.float32))
            info["scale"][method] = scale
        out["layers"][layer] = info
    with open(os.path.join(a.outdir, "ref.json"), "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
