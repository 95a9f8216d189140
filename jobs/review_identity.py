"""Record a reviewer's identity decision: must-link, cannot-link or clear, for two identifiers.

Identifiers are written TYPE:VALUE, e.g. ``email:ann@x.com`` or ``crm_contact_id:C-104``. The
decision goes to identity/review_decisions; the next identity run (batch or stream) applies it.
"""

from __future__ import annotations

from cdplake.cli import job_parser, load_from_args
from cdplake.identity import ReviewDecision, record_review_decisions
from cdplake.io.session import build_session


def identifier(text: str) -> tuple[str, str]:
    """``TYPE:VALUE`` -> ``(type, value)`` (the value may itself contain colons)."""
    id_type, sep, value = text.partition(":")
    if not sep or not id_type or not value:
        raise ValueError(f"identifier {text!r} must be written TYPE:VALUE, e.g. email:ann@x.com")
    return id_type, value


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and append one decision."""
    parser = job_parser(__doc__ or "record an identity review decision")
    parser.add_argument("decision", choices=["must_link", "cannot_link", "clear"])
    parser.add_argument("a", help="first identifier, TYPE:VALUE")
    parser.add_argument("b", help="second identifier, TYPE:VALUE")
    parser.add_argument("--reviewer", required=True, help="who decided (kept with the decision)")
    parser.add_argument("--note", default="", help="why")
    args = parser.parse_args(argv)
    try:
        decision = ReviewDecision(
            args.decision, identifier(args.a), identifier(args.b), args.reviewer, args.note
        )
    except ValueError as exc:
        parser.error(str(exc))
    env = load_from_args(args)
    spark = build_session(env, app_name="cdplake-review-identity")
    record_review_decisions(spark, env, [decision])
    print(f"recorded {args.decision} {args.a} {args.b} by {args.reviewer}; the next identity run applies it")


if __name__ == "__main__":
    main()
