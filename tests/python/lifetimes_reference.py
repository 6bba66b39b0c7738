"""Reference values from the Python package `lifetimes` at given parameters.

usage: lifetimes_reference.py IN_CSV OUT_CSV r alpha a b  r2 alpha2 s beta  p q gamma t
IN_CSV has columns x,t_x,T,zbar; OUT_CSV gets, per row, BG/NBD P(alive) and expected
purchases in t periods, Pareto/NBD P(alive) and expected purchases, and Gamma-Gamma
expected average spend (for x > 0).
"""

import sys

import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter


def main() -> None:
    src, dst = sys.argv[1:3]
    r, alpha, a, b, r2, alpha2, s, beta, p, q, gamma, t = map(float, sys.argv[3:15])
    df = pd.read_csv(src)
    x, t_x, T = df["x"], df["t_x"], df["T"]

    bg = BetaGeoFitter()
    bg.params_ = pd.Series({"r": r, "alpha": alpha, "a": a, "b": b})
    pareto = ParetoNBDFitter()
    pareto.params_ = pd.Series({"r": r2, "alpha": alpha2, "s": s, "beta": beta})
    gg = GammaGammaFitter()
    gg.params_ = pd.Series({"p": p, "q": q, "v": gamma})

    out = pd.DataFrame(
        {
            "bg_p_alive": bg.conditional_probability_alive(x, t_x, T),
            "bg_expected": bg.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T),
            "pareto_p_alive": pareto.conditional_probability_alive(x, t_x, T),
            "pareto_expected": pareto.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T),
            "gg_spend": gg.conditional_expected_average_profit(x.where(x > 0, 1), df["zbar"].where(x > 0, 1.0)),
        }
    )
    out.to_csv(dst, index=False, float_format="%.17g")


if __name__ == "__main__":
    main()
