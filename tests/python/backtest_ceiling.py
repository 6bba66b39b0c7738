"""How well anything can rank CDNOW's customers by "no purchase in the next 39 weeks" from
their purchases before 1997-10-01: the ceiling a card fitted by `rapport backtest --fit` is
measured against.

    backtest_ceiling.py CDNOW_master.txt

Fits, on the customers `rapport backtest --fit` fits on (FNV-1a of the id even) and judged on
the others, an unconstrained logistic regression over a flexible reading of the purchase
history: each of recency, purchase days, days since the first purchase, spend and BG/NBD's
expected purchases cut in ten bins (one weight per bin, so any shape), every pair of recency
and purchase-day bins (so their interplay too), and the raw values' logarithms. Prints the
held-out AUC of it and of the single values, as JSON; with scikit-learn installed, also of
gradient-boosted trees over the same five values.
"""

import json
import sys

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter
from scipy.optimize import minimize
from scipy.stats import rankdata

AS_OF = pd.Timestamp("1997-10-01")
HORIZON = pd.Timedelta(weeks=39)


def fnv1a_even(customer_id):
    h = 0xCBF29CE484222325
    for b in customer_id.encode():
        h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return h % 2 == 0


def auc(risk, outcome):
    ranks = rankdata(risk)
    positives = int(outcome.sum())
    negatives = len(outcome) - positives
    return (ranks[outcome == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)


def customers(path):
    log = pd.read_csv(path, sep=r"\s+", skiprows=1, names=["id", "date", "cds", "usd"], dtype={"id": str, "date": str})
    log["id"] = log["id"].astype(int).astype(str)
    log["date"] = pd.to_datetime(log["date"], format="%Y%m%d")
    before = log[log.date < AS_OF]
    after = log[(log.date >= AS_OF) & (log.date < AS_OF + HORIZON)]
    g = before.groupby("id")
    c = pd.DataFrame({"first": g.date.min(), "last": g.date.max(), "spend": g.usd.sum(), "days": g.date.nunique()})
    c["recency"] = (AS_OF - c["last"]).dt.days
    c["tenure"] = (AS_OF - c["first"]).dt.days
    c["outcome"] = (~c.index.isin(after.id.unique())).astype(int)
    bg = BetaGeoFitter()
    x, t_x, t = c["days"] - 1, (c["last"] - c["first"]).dt.days / 7, c["tenure"] / 7
    bg.fit(x, t_x, t)
    c["expected"] = bg.conditional_expected_number_of_purchases_up_to_time(90 / 7, x, t_x, t)
    return c


def bins(values, n=10):
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def design(c):
    columns = []
    binned = {}
    for name in ["recency", "days", "tenure", "spend", "expected"]:
        b = bins(c[name].to_numpy(dtype=float))
        binned[name] = b
        columns += [(b == k).astype(float) for k in range(1, b.max() + 1)]
        columns.append(np.log1p(c[name].to_numpy(dtype=float)))
    r, d = binned["recency"], np.minimum(binned["days"], 4)
    columns += [((r == i) & (d == j)).astype(float) for i in range(r.max() + 1) for j in range(1, d.max() + 1)]
    x = np.column_stack(columns)
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-9)
    return np.column_stack([np.ones(len(c)), x])


def logistic(x, y, ridge=1.0):
    def loss(w):
        eta = x @ w
        value = np.sum(np.logaddexp(0, eta) - y * eta) + ridge * np.sum(w[1:] ** 2) / 2
        grad = x.T @ (1 / (1 + np.exp(-eta)) - y) + ridge * np.concatenate([[0], w[1:]])
        return value, grad

    return minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x


def main():
    c = customers(sys.argv[1])
    train = np.array([fnv1a_even(i) for i in c.index])
    y = c["outcome"].to_numpy()
    x = design(c)
    w = logistic(x[train], y[train])
    out = {
        "customers": len(c),
        "outcomes": int(y.sum()),
        "train": int(train.sum()),
        "flexible_logistic_auc": auc(x[~train] @ w, y[~train]),
        "single": {
            "recency": auc(c["recency"].to_numpy()[~train], y[~train]),
            "purchase_days": auc(-c["days"].to_numpy()[~train], y[~train]),
            "expected_purchases": auc(-c["expected"].to_numpy()[~train], y[~train]),
        },
    }
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        pass
    else:
        raw = c[["recency", "days", "tenure", "spend", "expected"]].to_numpy(dtype=float)
        model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0)
        model.fit(raw[train], y[train])
        out["gradient_boosting_auc"] = auc(model.predict_proba(raw[~train])[:, 1], y[~train])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
