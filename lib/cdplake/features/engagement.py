"""Email engagement rows with machine opens and bot clicks told apart from people.

Privacy proxies (Apple Mail Privacy Protection) fetch every image, so an "open" arrives
seconds after delivery whether or not anyone read the mail; security scanners follow every
link of a message the moment it lands. Neither says anything about the person, so both are
flagged here and the declared traits (``conf/features.yaml``) count only human ones.

Gmail's image proxy (``GoogleImageProxy`` in the user agent) is not a machine open by
default: Gmail fetches images when the reader opens the message.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdplake.config.features import EmailSettings

HARD_BOUNCE_TYPES = ("bounce",)
UNSUBSCRIBES = ("unsubscribe", "group_unsubscribe")


def matches_any(value: Column, patterns: Sequence[str]) -> Column:
    """True when ``value`` matches one of the regexes; false for null or no patterns."""
    hit = F.lit(False)
    for pattern in patterns:
        hit = hit | F.coalesce(value.rlike(pattern), F.lit(False))
    return hit


def seconds_after(later: Column, earlier: Column) -> Column:
    """Seconds (fractional) from ``earlier`` to ``later``; null when either is null."""
    return (F.unix_micros(later) - F.unix_micros(earlier)) / F.lit(1_000_000.0)


def flag_email_events(email_events: DataFrame, settings: EmailSettings) -> DataFrame:
    """Add ``delivered_at``, ``is_machine_open`` and ``is_bot_click`` to email events.

    Args:
        email_events: silver email events with ``customer_id`` (``event, event_ts,
            message_id, url, user_agent``).
        settings: the thresholds and user-agent patterns.

    Returns:
        The rows unchanged plus ``delivered_at`` (first delivery of the row's message, null
        when unknown), ``is_machine_open`` (an open within ``machine_open_seconds`` of
        delivery or from a proxy user agent) and ``is_bot_click`` (a click within
        ``bot_click_seconds`` of delivery, from a bot user agent, or one of a burst over at
        least ``bot_click_burst_urls`` distinct links within ``bot_click_burst_seconds``).
        Both flags are false for other events.
    """
    per_message = Window.partitionBy("customer_id", "message_id")
    is_open = F.col("event") == "open"
    is_click = F.col("event") == "click"
    click_ts = F.when(is_click, F.col("event_ts"))
    delivered_at = F.min(F.when(F.col("event") == "delivered", F.col("event_ts"))).over(per_message)
    flagged = email_events.select(
        "*",
        # A null message id groups unrelated events: no delivery time can be trusted then.
        F.when(F.col("message_id").isNotNull(), delivered_at).alias("delivered_at"),
        # collect_set: Spark has no DISTINCT window aggregates.
        F.size(F.collect_set(F.when(is_click, F.col("url"))).over(per_message)).alias("_click_urls"),
        seconds_after(F.max(click_ts).over(per_message), F.min(click_ts).over(per_message)).alias("_burst"),
    )
    delay = seconds_after(F.col("event_ts"), F.col("delivered_at"))
    machine_open = is_open & (
        F.coalesce(delay <= settings.machine_open_seconds, F.lit(False))
        | matches_any(F.col("user_agent"), settings.machine_open_user_agents)
    )
    burst = (
        F.col("message_id").isNotNull()
        & (F.col("_click_urls") >= settings.bot_click_burst_urls)
        & (F.col("_burst") <= settings.bot_click_burst_seconds)
    )
    bot_click = is_click & (
        F.coalesce(delay <= settings.bot_click_seconds, F.lit(False))
        | matches_any(F.col("user_agent"), settings.bot_click_user_agents)
        | F.coalesce(burst, F.lit(False))
    )
    return flagged.select(
        *email_events.columns,
        "delivered_at",
        machine_open.alias("is_machine_open"),
        bot_click.alias("is_bot_click"),
    )


def email_messages(flagged: DataFrame) -> DataFrame:
    """One row per (customer, message): what happened to it, as 0/1 integers for easy sums.

    Args:
        flagged: :func:`flag_email_events` output.

    Returns:
        ``customer_id, message_id, ts`` (delivery time, else the first event's time) and
        ``sent, delivered, bounced, hard_bounced, human_opened, machine_opened,
        human_clicked, bot_clicked, unsubscribed, complained``. Events without a message id
        are left out (they cannot be tied to a send).
    """
    event = F.col("event")

    def any_(cond: Column, name: str) -> Column:
        return F.max(F.when(cond, 1).otherwise(0)).alias(name)

    hard = (event == "bounce") & F.coalesce(
        F.lower(F.col("bounce_type")).isin(*HARD_BOUNCE_TYPES), F.lit(True)
    )
    return (
        flagged.where(F.col("message_id").isNotNull())
        .groupBy("customer_id", "message_id")
        .agg(
            F.coalesce(F.min("delivered_at"), F.min("event_ts")).alias("ts"),
            any_(event == "processed", "sent"),
            any_(event == "delivered", "delivered"),
            any_(event == "bounce", "bounced"),
            any_(hard, "hard_bounced"),
            any_((event == "open") & ~F.col("is_machine_open"), "human_opened"),
            any_(F.col("is_machine_open"), "machine_opened"),
            any_((event == "click") & ~F.col("is_bot_click"), "human_clicked"),
            any_(F.col("is_bot_click"), "bot_clicked"),
            any_(event.isin(*UNSUBSCRIBES), "unsubscribed"),
            any_(event == "spamreport", "complained"),
        )
    )
