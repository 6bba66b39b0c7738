"""Median fit times of lifetimes' BetaGeoFitter and ParetoNBDFitter on a summary csv.

usage: lifetimes_fit.py CSV RUNS  → prints two numbers of seconds: BG/NBD, Pareto/NBD
"""

import statistics
import sys
import time

import pandas as pd
from lifetimes import BetaGeoFitter, ParetoNBDFitter


def median_fit(make, df, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        make().fit(df["x"], df["t_x"], df["T"])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


df = pd.read_csv(sys.argv[1])
runs = int(sys.argv[2])
print(median_fit(BetaGeoFitter, df, runs), median_fit(ParetoNBDFitter, df, runs))
