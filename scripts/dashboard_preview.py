"""Render the Grafana dashboard's panels from a real Prometheus, for docs/operations.md (no Grafana runs here).

Reads ``infra/grafana/dashboards/portrait.json``, runs each panel's PromQL as a range query over the
last ``--minutes`` against ``--prometheus`` and draws the panels in the dashboard's grid, titles,
units and legends as Grafana would label them. It shows what the provisioned dashboard shows on the
same data, and fails if a query does not run.

    .venv/bin/python scripts/dashboard_preview.py --prometheus http://127.0.0.1:9090 --out docs/img/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "portrait.json"
UNITS = {"reqps": "req/s", "s": "seconds", "short": ""}


def legend(fmt: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or json.dumps(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--step", type=float, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    args = ap.parse_args()
    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    end = time.time()
    start = end - args.minutes * 60
    rows = max(p["gridPos"]["y"] // p["gridPos"]["h"] for p in panels) + 1
    fig, axes = plt.subplots(rows, 2, figsize=(14, 3.1 * rows), squeeze=False)
    fig.suptitle(f"{dash['title']} (the provisioned Grafana dashboard's queries, {args.minutes:g} min)", fontsize=14)
    for p in panels:
        ax = axes[p["gridPos"]["y"] // p["gridPos"]["h"]][p["gridPos"]["x"] // 12]
        for t in p["targets"]:
            r = httpx.get(f"{args.prometheus}/api/v1/query_range", timeout=30,
                          params={"query": t["expr"], "start": start, "end": end, "step": args.step})
            r.raise_for_status()
            body = r.json()
            if body["status"] != "success":
                raise SystemExit(f"{p['title']}: {t['expr']}: {body}")
            for series in body["data"]["result"]:
                xs = [datetime.fromtimestamp(float(ts)) for ts, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(xs, ys, label=legend(t.get("legendFormat", ""), series["metric"]), linewidth=1.5)
        ax.set_title(p["title"], fontsize=11, loc="left")
        ax.set_ylabel(UNITS.get(p["fieldConfig"]["defaults"].get("unit", "short"), ""), fontsize=9)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="upper left", ncol=2)
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="gray")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out} ({len(panels)} panels)")


if __name__ == "__main__":
    main()
