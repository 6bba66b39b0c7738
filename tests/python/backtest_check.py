"""An independent computation of a backtest's AUCs from the per-customer values Rapport
exported (`rapport backtest --customers FILE`).

    backtest_check.py CUSTOMERS_CSV

Prints a JSON object: for `score` and each baseline, the AUC of ranking customers by risk
(a lower score, P(alive), expected purchases or RFM sum, a larger recency) for the outcome,
from midranks (scipy.stats.rankdata), over the customers that have the value; and the
number of customers and of outcomes.
"""

import json
import sys

import numpy as np
import pandas as pd
from scipy.stats import rankdata

RISK = {
    "score": -1,
    "p_alive": -1,
    "expected_purchases": -1,
    "recency_days": 1,
    "rfm": -1,
}


def auc(risk, outcome):
    ranks = rankdata(risk)  # average ranks for ties
    positives = int(outcome.sum())
    negatives = len(outcome) - positives
    return (ranks[outcome == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)


def main():
    rows = pd.read_csv(sys.argv[1], dtype={"customer_id": str})
    out = {"customers": len(rows), "outcomes": int(rows["outcome"].sum())}
    for column, sign in RISK.items():
        have = rows[rows[column].notna()]
        out[column] = auc(sign * have[column].to_numpy(dtype=np.float64), have["outcome"].to_numpy())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
