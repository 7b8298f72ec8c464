#!/usr/bin/env python3
"""Checks a freeair HTML report and its report.json.

usage: stats_check_report.py REPORT.html REPORT.json METRICS.json [--expect FIXTURE.json]
       [--no-extras]

HTML: parses it; no scripts, no external resources (every src/href is a
data: URI or an in-page anchor), a Content-Security-Policy forbidding the
network, the key sections and charts present, Table 2 numbers equal to
metrics.json. JSON: holds metrics.json unchanged plus the cohort flow and
split composition given by --expect (from stats_report_fixture.py).
--no-extras: the run directory held only metrics.json; the report must say
the optional parts are absent and must not claim a synthetic cohort.
"""
import argparse
import json
import sys
from html.parser import HTMLParser


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.ids = set()
        self.stack = []
        self.text = []
        self.table2 = []  # rows of cell texts
        self.in_table2 = False
        self.row = None
        self.cell = None
        self.bad = []
        self.csp = None
        self.imgs = 0
        self.svgs = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.bad.append("a <script> element")
        for k in ("src", "href", "xlink:href", "action", "data"):
            v = a.get(k)
            if v is not None and not (v.startswith("data:") or v.startswith("#")):
                self.bad.append(f"external reference {k}={v[:60]!r}")
        if any(k.startswith("on") for k in a):
            self.bad.append(f"event handler on <{tag}>")
        if tag == "meta" and a.get("http-equiv", "").lower() == "content-security-policy":
            self.csp = a.get("content", "")
        if tag == "img":
            self.imgs += 1
        if tag == "svg":
            self.svgs += 1
        if tag == "table" and a.get("id") == "table2":
            self.in_table2 = True
        if self.in_table2 and tag == "tr":
            self.row = []
        if self.in_table2 and tag == "td":
            self.cell = []
        if tag == "br" and self.cell is not None:
            self.cell.append("|")

    def handle_endtag(self, tag):
        if self.in_table2 and tag == "td" and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        if self.in_table2 and tag == "tr" and self.row:
            self.table2.append(self.row)
            self.row = None
        if tag == "table" and self.in_table2:
            self.in_table2 = False

    def handle_data(self, data):
        self.text.append(data)
        if self.cell is not None:
            self.cell.append(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("html")
    ap.add_argument("json")
    ap.add_argument("metrics")
    ap.add_argument("--expect")
    ap.add_argument("--no-extras", action="store_true")
    a = ap.parse_args()
    errors = []
    html = open(a.html, encoding="utf-8").read()
    p = Page()
    p.feed(html)
    p.close()
    text = " ".join("".join(p.text).split())
    m = json.load(open(a.metrics))
    r = json.load(open(a.json))

    errors += p.bad
    if not p.csp or "default-src 'none'" not in p.csp:
        errors.append(f"no Content-Security-Policy forbidding the network (got {p.csp!r})")
    for needle in ("http://", "https://", "@import"):
        if needle in html:
            errors.append(f"the page mentions {needle!r}: it must not load anything")
    # url() may only point inside the page (SVG markers: url(#id)).
    for i in range(len(html)):
        if html.startswith("url(", i) and not html.startswith("url(#", i):
            errors.append(f"external url(...) at offset {i}")
            break
    for sid in ("summary", "cohort", "splits", "models", "table2", "operating-points", "roc", "subgroups",
                "calibration", "calibration-table", "distributions", "decision-curve", "errors", "gallery",
                "provenance", "methods", "split-table", "inputs"):
        if sid not in p.ids:
            errors.append(f"missing element id={sid}")
    n_models = len(m["models"])
    if n_models > 1 and "comparison-table" not in p.ids:
        errors.append("missing the comparison table")
    # One ROC per subgroup plus overall, a reliability plot, a histogram per
    # model and a decision curve.
    n_sub = len(m["models"][0]["subgroups"])
    want_svgs = 1 + n_sub + 1 + n_models + 1
    if p.svgs < want_svgs:
        errors.append(f"{p.svgs} charts, want at least {want_svgs}")
    # Table 2 = metrics.json at the primary rule.
    rule = m["options"]["primary_rule"]
    if len(p.table2) != n_models:
        errors.append(f"Table 2 has {len(p.table2)} rows, want {n_models}")
    for row, mm in zip(p.table2, m["models"]):
        op = next(o for o in mm["overall"]["operating_points"] if o["rule"] == rule)
        want = [mm["name"], f"{op['threshold']:.4g}"]
        for k in ("sensitivity", "specificity", "accuracy", "ppv", "f1"):
            e, ci = op[k]["estimate"], op[k]["ci"]
            want.append("—" if e is None else f"{e:.3f}" + (f"|{ci[0]:.3f}–{ci[1]:.3f}" if ci else ""))
        auc = mm["overall"]["auc"]
        for key in ("delong_ci", "bootstrap_ci"):
            ci = auc[key]
            want.append(f"{auc['estimate']:.3f}" + (f"|{ci[0]:.3f}–{ci[1]:.3f}" if ci else ""))
        if row != want:
            errors.append(f"Table 2 row {row} != metrics.json {want}")
    synthetic_banner = "synthetic-banner" in p.ids
    if a.no_extras:
        if synthetic_banner:
            errors.append("synthetic banner without cohort.json")
        for msg in ("No manifest.csv", "No Grad-CAM images", "No misclassified.csv"):
            if msg.replace(".csv", "") not in text.replace(".csv", ""):
                errors.append(f"report does not say: {msg}")
        if r["cohort"] is not None or r["flow"]["manifest"] or r["synthetic"]:
            errors.append("report.json invents a cohort or manifest")
    else:
        if not synthetic_banner or "Synthetic cohort." not in text:
            errors.append("no synthetic-cohort banner")
        elif html.index("synthetic-banner") > html.index('id="summary"'):
            errors.append("the synthetic banner is not at the top")
        if "<script>alert(1)</script>" in html or "&lt;script&gt;alert(1)&lt;/script&gt;" not in html:
            errors.append("config text is not escaped")
        if not r["synthetic"]:
            errors.append("report.json: synthetic is not true")
    if a.expect:
        exp = json.load(open(a.expect))
        flow = r["flow"]
        if (flow["n_images"], flow["n_included"]) != (exp["n_images"], exp["n_included"]):
            errors.append(f"flow {flow} != {exp}")
        got_ex = {x["reason"]: x["n"] for x in flow["excluded"]}
        if got_ex != exp["excluded"]:
            errors.append(f"exclusions {got_ex} != {exp['excluded']}")
        got_sp = {x["split"]: {"images": x["images"], "patients": x["patients"], "n_pos": x["n_pos"],
                               "n_neg": x["n_neg"]} for x in r["splits"]["rows"]}
        if got_sp != exp["splits"]:
            errors.append(f"splits {got_sp} != {exp['splits']}")
        if [x["split"] for x in r["splits"]["rows"]] != ["train", "val", "test"]:
            errors.append("splits not in train, val, test order")
        if len(r["gradcam"]) != exp["cams"] or p.imgs != exp["cams"]:
            errors.append(f"{len(r['gradcam'])} gallery entries / {p.imgs} <img>, want {exp['cams']}")
        if "left out" not in text:
            errors.append("the broken PNG is not reported as left out")
    if r["metrics"] != m:
        errors.append("report.json does not hold metrics.json unchanged")
    if r["schema"] != "freeair.report/1":
        errors.append("report.json schema")
    if errors:
        for e in errors:
            print(f"{a.html}: {e}")
        return 1
    print(f"{a.html}: {len(html)} bytes, {p.svgs} charts, {p.imgs} images; report.json consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
