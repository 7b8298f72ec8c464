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
"""
import json
import sys


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
        table.append(row)

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
        f"{p} img/s | ratio | RSS ours/peer MiB" for p in peers) + " | ours GFLOP/s (% peak) | peer GFLOP/s (% peak) |"
    for p, v in sorted(import_rss.items()):
        print(f"{p}: {v:.0f} MiB of RSS after importing torch + torchvision alone (included in its RSS)")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for row in table:
        o = row["freeair"]
        cells = [row["arch"], row["mode"], str(row["batch"]), row["precision"],
                 f"{o['images_per_s']:.2f}" if o else "-"]
        pg = "-"
        for p in peers:
            pp = row["peers"].get(p)
            if not pp:
                cells += ["-", "-", "-"]
                continue
            r = pp["result"]
            cells += [f"{r['images_per_s']:.2f}",
                      f"{pp['speed_ratio']:.2f}x" if pp["speed_ratio"] else "-",
                      f"{o['peak_rss_mib']:.0f}/{r['peak_rss_mib']:.0f}" if o else "-"]
            if pp["gflops"]:
                pg = f"{pp['gflops']:.0f} ({100 * pp['peak_fraction']:.0f}%)" if pp["peak_fraction"] else f"{pp['gflops']:.0f}"
        og = "-"
        if row.get("freeair_gflops"):
            fr = row.get("freeair_peak_fraction")
            og = f"{row['freeair_gflops']:.0f} ({100 * fr:.0f}%)" if fr else f"{row['freeair_gflops']:.0f}"
        cells += [og, pg]
        print("| " + " | ".join(cells) + " |")
    if protocol:
        print("\nprotocol estimate (750 x 100 epochs train + 135 x 100 validation):")
        for p in protocol:
            v = "" if p["validation_included"] else " (no batch-16 inference measured: training only)"
            print(f"  {p['arch']:18s} {p['precision']} {p['side']:16s} {p['hours']:7.1f} h{v}")
    json.dump({"threads": int(threads), "peer_layout": layout, "loadavg_end": load,
               "matmul_peak_gflops": peak, "peer_import_rss_mib": import_rss, "fwd_flops_per_image": flops,
               "rows": table, "protocol": protocol}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
