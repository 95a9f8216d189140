"""Landing: the seeded demo-data generator (with ground truth) and the raw-file stores.

``generate(demo)`` builds the raw files of every source plus the answer key;
``write_landing(env, data)`` puts them under ``landing/`` and ``ground_truth/`` of the lake,
on the local filesystem or S3.

The answer key (never read by the pipeline) is two CSV files under ``ground_truth/``:

* ``records.csv``: ``source, record_key, person_id, defect, copies``, one row per record key
  (events ``messageId``, email ``sg_event_id``, crm ``contact_id``, orders ``order_id``).
  ``defect`` is empty or a code (``malformed_json``, ``missing_key``, ``bad_timestamp``,
  ``bad_email``, ``bad_date``); ``copies`` counts the landing lines with that key (2 for a
  duplicate delivery; one per exported version of a CRM contact). A ``missing_key`` row names
  a key that the bad line itself no longer carries.
* ``persons.csv``: the true attributes of every person (household, old and new email...).
"""

from cdplake.landing.generator import SOURCES, GeneratedData, generate
from cdplake.landing.people import Person
from cdplake.landing.records import CRM_COLUMNS, TRUTH_COLUMNS, GroundTruthRow
from cdplake.landing.store import LandingStore, LocalStore, S3Store, store_for, write_generated, write_landing

__all__ = [
    "CRM_COLUMNS",
    "SOURCES",
    "TRUTH_COLUMNS",
    "GeneratedData",
    "GroundTruthRow",
    "LandingStore",
    "LocalStore",
    "Person",
    "S3Store",
    "generate",
    "store_for",
    "write_generated",
    "write_landing",
]
