"""RFM of the CDNOW log computed independently with pandas, for Rapport's end-to-end test.

Usage: rfm_reference.py CDNOW_master.txt AS_OF(YYYY-MM-DD) OUT.csv

Per customer, as of the date: recency (whole days since the last purchase day), frequency
(distinct purchase days), monetary (order value, to the cent), and R, F, M scores 1-5 by the
rule Rapport documents: rank the customers worst to best (least recent, fewest days, least
value first; ties by customer id as text) and score rank i of n as 1 + floor(5 i / n).
"""

import sys

import pandas as pd


def main() -> None:
    path, as_of, out = sys.argv[1:4]
    df = pd.read_csv(path, sep=r"\s+", header=None, dtype=str,
                     names=["customer", "date", "cds", "dollars"])
    df = df[df["customer"].str.isdigit()].copy()  # the header line, if any
    df["customer"] = df["customer"].astype(int).astype(str)
    df["dollars"] = df["dollars"].astype(float)
    df["day"] = pd.to_datetime(df["date"], format="%Y%m%d")
    end = pd.Timestamp(as_of)
    df = df[df["day"] <= end]
    g = (df.groupby("customer")
           .agg(last=("day", "max"), frequency=("day", "nunique"), monetary=("dollars", "sum"))
           .reset_index())
    g["recency"] = (end - g["last"]).dt.days
    g["monetary"] = g["monetary"].round(2)
    n = len(g)

    def quintiles(columns, ascending):
        ranked = g.sort_values(columns, ascending=ascending, kind="mergesort")
        scores = pd.Series(1 + (5 * pd.RangeIndex(n).to_numpy()) // n, index=ranked.index)
        return scores.sort_index()

    g["r"] = quintiles(["recency", "customer"], [False, True])
    g["f"] = quintiles(["frequency", "customer"], [True, True])
    g["m"] = quintiles(["monetary", "customer"], [True, True])
    g[["customer", "recency", "frequency", "monetary", "r", "f", "m"]].to_csv(out, index=False)


if __name__ == "__main__":
    main()
