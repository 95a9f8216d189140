"""Privacy: email consent per customer, enforced before any segment is published."""

from cdplake.privacy.consent import (
    CONSENT_COLUMNS,
    ConsentError,
    country_code,
    crm_opt_in,
    customer_consent,
    email_suppressions,
    enforce_consent,
    is_valid_email,
    opt_in_required,
    purpose_allows,
    with_consent,
)

__all__ = [
    "CONSENT_COLUMNS",
    "ConsentError",
    "country_code",
    "crm_opt_in",
    "customer_consent",
    "email_suppressions",
    "opt_in_required",
    "enforce_consent",
    "is_valid_email",
    "purpose_allows",
    "with_consent",
]
