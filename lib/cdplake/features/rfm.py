"""RFM (recency, frequency, monetary value) with quintile scores and named cells, and CLV.

Scores (1-5) rank each buyer against every other buyer, so they are always computed over
the whole buyer population, also when features are wanted for a few customers only.

**Quintile ties.** ``score = min(5, 1 + floor(5 * percent_rank))`` where ``percent_rank``
is ``(rank - 1) / (buyers - 1)`` with the buyers ordered worst to best. Equal values share
a rank, so they always share a score (a plain ``ntile`` would split a tie arbitrarily, and
the same data could score differently run to run), and a tied block gets the score of the
quintile where it *starts*: if 70% of buyers ordered once, they all get frequency score 1,
not a mix of 1 to 4. A lone buyer scores 1.

**Predicted CLV** (a BG/NBD-like model small enough to compute by hand):

- purchase rate ``λ = orders / tenure`` per day, tenure = days since the first order, at
  least ``min_tenure_days`` (a first-week buyer is not assumed to buy daily);
- probability the customer is still active after ``d`` days without an order:
  ``p_alive = π·e^(−λd) / (π·e^(−λd) + 1 − π)`` with the prior ``π`` (``prior_alive``):
  an active customer buying at rate λ goes ``d`` days without an order with probability
  ``e^(−λd)`` (Poisson), Bayes' rule turns that into the odds of still being active;
- ``clv_predicted = p_alive · λ · horizon_days · average order value``, rounded to cents.

Historical CLV is the money kept from completed orders (``revenue``).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdplake.config.features import ClvSettings, RfmSettings
from cdplake.features.columns import at_or_before, days_between, within_days


def quintile_score(value: Column, higher_is_better: bool = True) -> Column:
    """``min(5, 1 + floor(5 * percent_rank))`` over all rows of the frame: 1 (worst) to 5 (best).

    Must be used in a ``select`` over the population being ranked; nulls rank worst. See the
    module docstring for how ties are scored.
    """
    order = value.asc_nulls_first() if higher_is_better else value.desc_nulls_first()
    # One global window: the whole buyer population must be ranked together.
    rank = F.percent_rank().over(Window.orderBy(order))
    return F.least(F.lit(5), F.floor(rank * 5) + 1).cast("int")


def rfm_columns(settings: RfmSettings) -> tuple[tuple[str, str], ...]:
    """Output columns of :func:`rfm_features` (after ``customer_id``), with types."""
    windowed = []
    for days in settings.windows:
        windowed += [(f"rfm_frequency_{days}d", "bigint"), (f"rfm_monetary_{days}d", "decimal(18,2)")]
    return (
        ("rfm_recency_days", "int"),
        *windowed,
        ("rfm_r_score", "int"),
        ("rfm_f_score", "int"),
        ("rfm_m_score", "int"),
        ("rfm_score", "string"),
        ("rfm_cell", "string"),
    )


def rfm_cell(settings: RfmSettings) -> Column:
    """The first configured cell whose score ranges hold, else ``other_cell``; null without scores."""
    r, f, m = F.col("rfm_r_score"), F.col("rfm_f_score"), F.col("rfm_m_score")
    cell: Column | None = None
    for c in settings.cells:
        cond = r.between(*c.r) & f.between(*c.f) & m.between(*c.m)
        cell = F.when(cond, F.lit(c.name)) if cell is None else cell.when(cond, F.lit(c.name))
    other = F.lit(settings.other_cell)
    out = other if cell is None else cell.otherwise(other)
    return F.when(r.isNotNull(), out)


def rfm_features(orders: DataFrame, as_of: dt.datetime, settings: RfmSettings) -> DataFrame:
    """RFM values, scores and cell for every customer with a completed order by ``as_of``.

    Args:
        orders: silver orders with ``customer_id`` (all customers: scores are relative).
        as_of: evaluation time.
        settings: windows, the scored window and the cells.

    Returns:
        ``customer_id`` and :func:`rfm_columns`. Recency is days since the last completed
        order; frequency and monetary count completed orders and their totals per window.
    """
    completed = orders.where(at_or_before(F.col("order_ts"), as_of) & (F.col("status") == "completed"))
    total = F.col("total").cast("decimal(18,2)")
    aggs = [F.max("order_ts").alias("_last")]
    for days in settings.windows:
        inside = within_days(F.col("order_ts"), as_of, days)
        aggs += [
            F.count_if(inside).alias(f"rfm_frequency_{days}d"),
            F.coalesce(F.sum(F.when(inside, total)), F.lit(0).cast("decimal(18,2)")).alias(
                f"rfm_monetary_{days}d"
            ),
        ]
    base = completed.groupBy("customer_id").agg(*aggs)
    base = base.withColumn("rfm_recency_days", days_between(F.col("_last"), as_of))
    w = settings.score_window_days
    scored = base.select(
        "*",
        quintile_score(F.col("rfm_recency_days"), higher_is_better=False).alias("rfm_r_score"),
        quintile_score(F.col(f"rfm_frequency_{w}d")).alias("rfm_f_score"),
        quintile_score(F.col(f"rfm_monetary_{w}d")).alias("rfm_m_score"),
    )
    scored = scored.withColumn(
        "rfm_score",
        F.concat(*(F.col(c).cast("string") for c in ("rfm_r_score", "rfm_f_score", "rfm_m_score"))),
    ).withColumn("rfm_cell", rfm_cell(settings))
    return scored.select("customer_id", *(F.col(n).cast(t).alias(n) for n, t in rfm_columns(settings)))


CLV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("first_order_at", "timestamp"),
    ("avg_order_value", "decimal(18,2)"),
    ("clv_historical", "decimal(18,2)"),
    ("clv_purchase_rate", "double"),
    ("clv_p_alive", "double"),
    ("clv_predicted", "decimal(18,2)"),
)


def clv_columns(profile: DataFrame, as_of: dt.datetime, settings: ClvSettings) -> DataFrame:
    """Add :data:`CLV_COLUMNS` to a profile with ``order_count, revenue, first_order_at, days_since_last_order``.

    Customers without a completed order get ``clv_historical`` 0 and nulls elsewhere (no
    rate can be estimated from nothing). See the module docstring for the model.
    """
    orders = F.col("order_count").cast("double")
    buyer = F.col("order_count") > 0
    tenure = F.greatest(days_between(F.col("first_order_at"), as_of), F.lit(settings.min_tenure_days))
    rate = F.when(buyer, orders / tenure)
    prior = F.lit(settings.prior_alive)
    still = prior * F.exp(-F.col("clv_purchase_rate") * F.col("days_since_last_order"))
    aov = F.when(buyer, F.col("revenue") / F.col("order_count"))
    return (
        profile.withColumn("avg_order_value", aov.cast("decimal(18,2)"))
        .withColumn("clv_historical", F.coalesce(F.col("revenue"), F.lit(0)).cast("decimal(18,2)"))
        .withColumn("clv_purchase_rate", rate)
        .withColumn("clv_p_alive", still / (still + 1 - prior))
        .withColumn(
            "clv_predicted",
            F.round(
                F.col("clv_p_alive")
                * F.col("clv_purchase_rate")
                * F.lit(settings.horizon_days)
                * (F.col("revenue") / F.col("order_count")).cast("double"),
                2,
            ).cast("decimal(18,2)"),
        )
    )
