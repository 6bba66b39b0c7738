"""RFM scores computed by DuckDB: the baseline of `make bench-segmentation`.

Usage: rfm_duckdb.py TRANSACTIONS.csv AS_OF(YYYY-MM-DD)

The CSV has the columns customer, day (YYYY-MM-DD), amount. Per customer, as of the date:
recency (whole days since the last purchase day), frequency (distinct purchase days),
monetary (value to the cent), and R, F, M scored 1-5 by Rapport's documented rule: rank worst
to best (least recent, fewest days, least value first; ties by customer id) and score rank i
of n as 1 + floor(5 i / n). Prints JSON: load and RFM times in milliseconds, the number of
customers, and how many customers have each (r, f, m).
"""

import json
import sys
import time

import duckdb


def main() -> None:
    path, as_of = sys.argv[1:3]
    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM read_csv(?, header = true, "
        "columns = {'customer': 'VARCHAR', 'day': 'DATE', 'amount': 'DOUBLE'})",
        [path],
    )
    loaded = time.perf_counter()
    con.execute(
        f"""
        CREATE TABLE rfm AS
        WITH g AS (
            SELECT customer,
                   date_diff('day', max(day), DATE '{as_of}') AS recency,
                   count(DISTINCT day) AS frequency,
                   round(sum(amount), 2) AS monetary
            FROM t WHERE day <= DATE '{as_of}' GROUP BY customer
        ), n AS (SELECT count(*) AS n FROM g)
        SELECT customer, recency, frequency, monetary,
               1 + (5 * (row_number() OVER (ORDER BY recency DESC, customer) - 1)) // n AS r,
               1 + (5 * (row_number() OVER (ORDER BY frequency, customer) - 1)) // n AS f,
               1 + (5 * (row_number() OVER (ORDER BY monetary, customer) - 1)) // n AS m
        FROM g, n
        """
    )
    done = time.perf_counter()
    histogram = con.execute(
        "SELECT r, f, m, count(*) FROM rfm GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    customers = con.execute("SELECT count(*) FROM rfm").fetchone()[0]
    print(json.dumps({
        "load_ms": (loaded - started) * 1e3,
        "rfm_ms": (done - loaded) * 1e3,
        "customers": customers,
        "histogram": [list(map(int, row)) for row in histogram],
    }))


if __name__ == "__main__":
    main()
