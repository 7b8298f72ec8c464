#!/usr/bin/python3
"""bench_table.py - turns the JSON lines of bench/engine_vs_torch.sh into the
ratio table (printed, Markdown) and one JSON document.

usage: bench_table.py LINES.jsonl OUT.json LOADAVG THREADS LAYOUT

Per configuration the best images/s of the repeats is kept per side (noise on
a shared machine only ever slows a run down); peak RSS is the largest seen.
Achieved GFLOP/s = FLOPs per image (conv + linear, forward; training 3x) x
images/s, as a fraction of the best oneDNN 2048^3 matmul of the same
precision measured in the same run. The protocol estimate is the study's
750 training images x 100 epochs at the measured training speed plus 135
validation images x 100 epochs at the batch-16 inference speed.

Targets (issue 9), checked per row and printed after the table: bf16 at
least 2x and fp32 at least 1.2x the oldest PyTorch in the run (Debian's
1.13), bf16 at least 1.25x and fp32 at least 1.0x every newer one; in
training, peak RSS no higher than the peer's.
"""
import json
import re
import sys

TARGETS_OLDEST = {"bf16": 2.0, "fp32": 1.2}
TARGETS_NEWER = {"bf16": 1.25, "fp32": 1.0}


def version_key(peer):
    """torch-1.13.0a0 -> (1, 13, 0): orders peers by release."""
    return tuple(int(x) for x in re.findall(r"\d+", peer.split("+")[0])[:3])


def main():
    src, out, load, threads, layout = sys.argv[1:6]
    rows = [json.loads(l) for l in open(src) if l.strip().startswith("{")]
    peak = {}
    flops = {}
    best = {}
    import_rss = {}
    for r in rows:
        if r.get("event") == "import_rss":
            import_rss[r["peer"]] = r["peak_rss_mib"]
        if r.get("event") == "matmul":
            k = r["precision"]
            peak[k] = max(peak.get(k, 0), r["gflops"])
        elif r.get("event") == "flops":
            flops[r["arch"]] = r["fwd_flops_per_image"]
        elif r.get("event") == "bench":
            k = (r["arch"], r["mode"], r["batch"], r["precision"], r["peer"])
            b = best.get(k)
            if b is None:
                best[k] = dict(r)
            else:
                if r["images_per_s"] > b["images_per_s"]:
                    rss = max(b["peak_rss_mib"], r["peak_rss_mib"])
                    best[k] = dict(r)
                    best[k]["peak_rss_mib"] = rss
                else:
                    b["peak_rss_mib"] = max(b["peak_rss_mib"], r["peak_rss_mib"])
    peers = sorted({k[4] for k in best if k[4] != "freeair"})
    configs = sorted({k[:4] for k in best}, key=lambda c: (c[0], c[1] == "train", c[2], c[3]))

    def gflops(c, ips):
        f = flops.get(c[0])
        if not f or not ips:
            return None
        return f * (3 if c[1] == "train" else 1) * ips / 1e9

    table = []
    for c in configs:
        ours = best.get(c + ("freeair",))
        row = {"arch": c[0], "mode": c[1], "batch": c[2], "precision": c[3],
               "freeair": ours, "peers": {}}
        if ours:
            g = gflops(c, ours["images_per_s"])
            row["freeair_gflops"] = g
            row["freeair_peak_fraction"] = g / peak[c[3]] if g and peak.get(c[3]) else None
        for p in peers:
            pr = best.get(c + (p,))
            if not pr:
                continue
            g = gflops(c, pr["images_per_s"])
            row["peers"][p] = {
                "result": pr, "gflops": g,
                "peak_fraction": g / peak[c[3]] if g and peak.get(c[3]) else None,
                "speed_ratio": ours["images_per_s"] / pr["images_per_s"] if ours else None,
                "rss_ratio": ours["peak_rss_mib"] / pr["peak_rss_mib"] if ours else None,
            }
        rated = [(pp["speed_ratio"], p) for p, pp in row["peers"].items() if pp["speed_ratio"]]
        row["ratio_best_peer"] = min(rated)[0] if rated else None
        table.append(row)

    oldest = min(peers, key=version_key) if peers else None
    checks = []
    for row in table:
        for p, pp in row["peers"].items():
            if not pp["speed_ratio"]:
                continue
            want = (TARGETS_OLDEST if p == oldest else TARGETS_NEWER)[row["precision"]]
            checks.append({"arch": row["arch"], "mode": row["mode"], "batch": row["batch"],
                           "precision": row["precision"], "peer": p, "what": "speed",
                           "value": pp["speed_ratio"], "target": want, "met": pp["speed_ratio"] >= want})
            if row["mode"] == "train":
                checks.append({"arch": row["arch"], "mode": row["mode"], "batch": row["batch"],
                               "precision": row["precision"], "peer": p, "what": "peak RSS",
                               "value": pp["rss_ratio"], "target": 1.0, "met": pp["rss_ratio"] <= 1.0})

    protocol = []
    for arch in sorted({c[0] for c in configs}):
        for prec in ("fp32", "bf16"):
            for side in ["freeair"] + peers:
                tr = [best[k] for k in best if k[0] == arch and k[1] == "train" and k[3] == prec and k[4] == side]
                inf = [best[k] for k in best if k[0] == arch and k[1] == "infer" and k[3] == prec and k[4] == side]
                if not tr:
                    continue
                t_ips = max(x["images_per_s"] for x in tr)
                i_ips = max((x["images_per_s"] for x in inf if x["batch"] > 1), default=None)
                secs = 750 * 100 / t_ips + (135 * 100 / i_ips if i_ips else 0)
                protocol.append({"arch": arch, "precision": prec, "side": side,
                                 "train_images_per_s": t_ips, "infer_images_per_s": i_ips,
                                 "hours": secs / 3600, "validation_included": i_ips is not None})

    print(f"\nthreads {threads}, peer layout {layout}, load average at end {load}")
    print("matmul 2048^3 peak (oneDNN, same run): " +
          ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in sorted(peak.items())))
    hdr = "| arch | mode | batch | prec | ours img/s | " + " | ".join(
        f"{p} img/s | ratio | RSS ours/peer MiB" for p in peers) + \
        " | ours / best peer | ours GFLOP/s (% peak) | best peer GFLOP/s (% peak) |"
    for p, v in sorted(import_rss.items()):
        print(f"{p}: {v:.0f} MiB of RSS after importing torch + torchvision alone (included in its RSS)")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for row in table:
        o = row["freeair"]
        cells = [row["arch"], row["mode"], str(row["batch"]), row["precision"],
                 f"{o['images_per_s']:.2f}" if o else "-"]
        pg, pg_ips = "-", 0
        for p in peers:
            pp = row["peers"].get(p)
            if not pp:
                cells += ["-", "-", "-"]
                continue
            r = pp["result"]
            cells += [f"{r['images_per_s']:.2f}",
                      f"{pp['speed_ratio']:.2f}x" if pp["speed_ratio"] else "-",
                      f"{o['peak_rss_mib']:.0f}/{r['peak_rss_mib']:.0f}" if o else "-"]
            if pp["gflops"] and r["images_per_s"] > pg_ips:
                pg_ips = r["images_per_s"]
                pg = f"{pp['gflops']:.0f} ({100 * pp['peak_fraction']:.0f}%)" if pp["peak_fraction"] else f"{pp['gflops']:.0f}"
        og = "-"
        if row.get("freeair_gflops"):
            fr = row.get("freeair_peak_fraction")
            og = f"{row['freeair_gflops']:.0f} ({100 * fr:.0f}%)" if fr else f"{row['freeair_gflops']:.0f}"
        best_ratio = row.get("ratio_best_peer")
        cells += [f"{best_ratio:.2f}x" if best_ratio else "-", og, pg]
        print("| " + " | ".join(cells) + " |")
    if checks:
        missed = [c for c in checks if not c["met"]]
        print(f"\ntargets: {len(checks) - len(missed)} of {len(checks)} met "
              f"(bf16/fp32 speed >= {TARGETS_OLDEST['bf16']}x/{TARGETS_OLDEST['fp32']}x {oldest}, "
              f">= {TARGETS_NEWER['bf16']}x/{TARGETS_NEWER['fp32']}x newer peers; training RSS <= peer's)")
        for c in missed:
            print(f"  missed: {c['arch']} {c['mode']} b{c['batch']} {c['precision']} vs {c['peer']}: "
                  f"{c['what']} {c['value']:.2f}x (target {'<=' if c['what'] == 'peak RSS' else '>='} {c['target']}x)")
    if protocol:
        sides = ["freeair"] + peers
        print("\nprotocol estimate, hours (750 x 100 epochs train + 135 x 100 validation at batch-16 "
              "inference speed; * = training only):")
        print("| arch | prec | " + " | ".join("ours" if x == "freeair" else x for x in sides) + " |")
        print("|" + "---|" * (len(sides) + 2))
        for arch in sorted({p["arch"] for p in protocol}):
            for prec in ("fp32", "bf16"):
                cells = []
                for side in sides:
                    e = [p for p in protocol if p["arch"] == arch and p["precision"] == prec and p["side"] == side]
                    cells.append(f"{e[0]['hours']:.1f}" + ("" if e[0]["validation_included"] else "*") if e else "-")
                if any(c != "-" for c in cells):
                    print(f"| {arch} | {prec} | " + " | ".join(cells) + " |")
    json.dump({"threads": int(threads), "peer_layout": layout, "loadavg_end": load,
               "matmul_peak_gflops": peak, "peer_import_rss_mib": import_rss, "fwd_flops_per_image": flops,
               "rows": table, "targets": checks, "protocol": protocol}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
