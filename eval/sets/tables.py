"""Write data/eval/tables/docs/tea_sales.xlsx, the spreadsheet of the table-question set
(`python -m eval.sets.tables`). The other files of the set are hand-written text; this one is
binary, so it is made here from the rows below and committed. The workbook's dates are fixed, so
the same rows give the same cells (openpyxl's zip bytes may still differ between versions)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "data" / "eval" / "tables" / "docs" / "tea_sales.xlsx"

# Sheet name -> rows (the first is the header). Two sheets: the loader stores each as a table.
SHEETS: dict[str, list[list[object]]] = {
    "2023年销量": [
        ["茶名", "产地", "类别", "销量（公斤）", "单价（元）"],
        ["西湖龙井", "浙江", "绿茶", 1250, 1680],
        ["碧螺春", "江苏", "绿茶", 980, 1200],
        ["铁观音", "福建", "乌龙茶", 2100, 560],
        ["大红袍", "福建", "乌龙茶", 1530, 880],
        ["普洱", "云南", "黑茶", 3400, 320],
        ["祁门红茶", "安徽", "红茶", 760, 640],
        ["信阳毛尖", "河南", "绿茶", 1120, 450],
    ],
    "门店": [
        ["门店", "城市", "开业年份", "员工数"],
        ["湖滨店", "杭州", 2015, 12],
        ["南京西路店", "上海", 2018, 9],
        ["三坊七巷店", "福州", 2012, 15],
        ["宽窄巷子店", "成都", 2020, 7],
    ],
}


def write(path: Path) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in SHEETS.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    fixed = dt.datetime(2024, 1, 1)
    wb.properties.created = wb.properties.modified = fixed
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.sets.tables", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT)
    print(write(ap.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
