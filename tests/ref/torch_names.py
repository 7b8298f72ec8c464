#!/usr/bin/env python3
"""torch_names.py ARCH SIZE DUMP [ARCH SIZE DUMP ...] - compare freeair's model graph (the output of
build/tools/model_dump ARCH SIZE) with torchvision: every state_dict key with
its shape and kind (parameter / BN running stat / num_batches_tracked), in the
same order, and the shapes of the named values (layer1..4, DenseNet blocks
and transitions, Inception Mixed_*) taken with forward hooks at SIZE.
Exits 1 on any mismatch, listing them."""
import sys

import torch
import torchvision.models as tvm


def build(arch):
    kw = dict(num_classes=1)
    if arch == "inception_v3":
        kw.update(aux_logits=True, init_weights=False)
    return getattr(tvm, arch)(**kw).eval()


def check(arch, size, dump):
    net = build(arch)
    ours_params, ours_values = [], {}
    for line in open(dump):
        f = line.split()
        if f[0] == "param":
            ours_params.append((f[1], f[2], tuple(int(x) for x in f[3:])))
        elif f[0] == "value":
            ours_values[f[1]] = tuple(int(x) for x in f[2:])
    trainable = {n for n, _ in net.named_parameters()}
    ref_params = []
    for k, v in net.state_dict().items():
        kind = "trainable" if k in trainable else ("counter" if k.endswith("num_batches_tracked") else "buffer")
        ref_params.append((k, kind, tuple(v.shape)))
    errors = []
    if ours_params != ref_params:
        a, b = dict((n, (k, s)) for n, k, s in ours_params), dict((n, (k, s)) for n, k, s in ref_params)
        for n in b:
            if n not in a:
                errors.append("missing %s" % n)
            elif a[n] != b[n]:
                errors.append("%s: ours %s torchvision %s" % (n, a[n], b[n]))
        for n in a:
            if n not in b:
                errors.append("extra %s" % n)
        if not errors:
            errors.append("same parameters in a different order")

    # Shapes of named values through forward hooks.
    shapes = {}

    def hook(name, relu=False):
        def f(_m, _i, out):
            shapes[name] = tuple(out.shape[1:])
        return f

    mods = dict(net.named_modules())
    for name in ours_values:
        if name in ("logits", "aux_logits"):
            continue
        if name not in mods:
            errors.append("named value %s is not a torchvision module" % name)
            continue
        mods[name].register_forward_hook(hook(name))
    with torch.no_grad():
        out = net(torch.zeros(1, 3, size, size))
    for name, shp in ours_values.items():
        if name == "logits":
            ref = (out.shape[1], 1, 1)
        elif name == "aux_logits":
            ref = (out.shape[1], 1, 1)
        else:
            ref = shapes.get(name)
        if ref != shp:
            errors.append("value %s: ours %s torchvision %s" % (name, shp, ref))
    expected_named = {"resnet": ["layer%d" % i for i in range(1, 5)],
                      "resnext": ["layer%d" % i for i in range(1, 5)],
                      "densenet": ["features"] + ["features.denseblock%d" % i for i in range(1, 5)]
                      + ["features.transition%d" % i for i in range(1, 4)],
                      "inception_v3": ["Mixed_%s" % s for s in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e",
                                                                "7a", "7b", "7c")]}
    for prefix, names in expected_named.items():
        if arch.startswith(prefix):
            for n in names + ["logits"]:
                if n not in ours_values:
                    errors.append("named value %s missing" % n)
    if errors:
        print("%s@%d: %d mismatch(es):" % (arch, size, len(errors)))
        for e in errors[:40]:
            print("  " + e)
        return 1
    print("%s@%d: %d state_dict entries and %d named values match torchvision"
          % (arch, size, len(ref_params), len(ours_values)))
    return 0


def main():
    torch.set_num_threads(1)
    args = sys.argv[1:]
    if not args or len(args) % 3:
        print(__doc__)
        return 2
    failed = 0
    for i in range(0, len(args), 3):
        failed |= check(args[i], int(args[i + 1]), args[i + 2])
    return failed


if __name__ == "__main__":
    sys.exit(main())
