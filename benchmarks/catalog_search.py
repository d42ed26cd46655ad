"""Catalog search over 10,000 listings: p50 and p95 of a representative query mix, answered
through the store's text search (SQLite FTS5 by default), side by side with the same queries
answered by a scan in Python over every listing (the baseline: what a search without the
database's text index costs). Target: p95 < 50 ms for the platform's search.

    .venv/bin/python benchmarks/catalog_search.py
    .venv/bin/python benchmarks/catalog_search.py --listings 2000 --rounds 5
    .venv/bin/python benchmarks/catalog_search.py --database postgresql://...   # any store URL

The listings are written directly to the database (each a realistic snapshot: title, summary,
a readme of about 100 words, 5-30 columns, 1-4 tags, metrics), then every query of the mix runs
``services.catalog.search`` as a member of one of 20 teams, exactly as the API calls it, and the
same query through the baseline. It prints the table and exits with status 1 if the target fails.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from entity.base import to_iso, utcnow  # noqa: E402
from entity.catalog import Listing, audience_of, metric_field, normalise_tag  # noqa: E402
from entity.database import Database  # noqa: E402
from entity.store import search_terms  # noqa: E402
from entity.user import User  # noqa: E402
from services.catalog import parse_metric, search  # noqa: E402
from services.context import Context, Platform  # noqa: E402

TARGET_P95_MS = 50.0
WORDS = ("churn customer retail telecom fraud credit risk house price demand forecast sales "
         "store energy load sensor failure wafer quality yield clinic patient readmission "
         "marketing campaign response insurance claim loan default supply delivery delay "
         "weather solar wind traffic airline booking hotel cancellation email spam review "
         "sentiment image defect machine vibration battery health network intrusion").split()
COLUMNS = ("tenure spend age income balance visits calls minutes plan region city device "
           "channel score amount duration temperature pressure humidity speed weight height "
           "rate count price discount rating clicks sessions").split()
TAGS = ("retail telecom finance health energy manufacturing marketing insurance logistics "
        "travel security gold experimental").split()
QUERIES = [
    {"q": "churn"},
    {"q": "customer churn", "tags": ["retail"]},
    {"tags": ["telecom"], "problem": "classification"},
    {"metrics": ["f1>=0.9"]},
    {"q": "fraud", "metrics": ["roc_auc>=0.8"], "sort": "roc_auc"},
    {"columns": ["tenure", "spend"]},
    {"q": "price", "problem": "regression", "metrics": ["rmse<3"]},
    {"tags": ["gold"], "sort": "fresh"},
    {"q": "sensor failure vibration"},
    {"fresh_days": 30, "sort": "title"},
    {"q": "unknowable-word"},
    {"tags": ["no-such-tag"]},
]


class Quiet:
    """The parts of a Platform that search never touches."""


def make_listings(db: Database, count: int, users: list[User], seed: int = 0) -> None:
    rng = random.Random(seed)
    now = utcnow()
    docs = []
    for i in range(count):
        problem = rng.choice(("classification", "regression"))
        title = " ".join(rng.sample(WORDS, 3)).title() + f" {i}"
        columns = rng.sample(COLUMNS, rng.randint(5, 25))
        tags = [normalise_tag(t) for t in rng.sample(TAGS, rng.randint(1, 4))]
        owner = rng.choice(users)
        visibility = rng.choice(("organisation", "organisation", "teams", "public"))
        teams = [f"t{rng.randrange(20)}"] if visibility == "teams" else []
        listing = Listing(project_id=f"p{i}", owner_id=owner.id, title=title,
                          summary=" ".join(rng.choices(WORDS, k=15)),
                          readme=" ".join(rng.choices(WORDS + COLUMNS, k=100)),
                          visibility=visibility, teams=teams, tags=tags)
        metrics = ({"accuracy": rng.uniform(0.6, 1), "f1": rng.uniform(0.5, 1),
                    "roc_auc": rng.uniform(0.6, 1)} if problem == "classification" else
                   {"rmse": rng.uniform(0.5, 10), "mae": rng.uniform(0.3, 8),
                    "r2": rng.uniform(0, 1)})
        listing.snapshot = {
            **{metric_field(k): v for k, v in metrics.items()},
            "metric_names": sorted(metrics), "version": 1, "problem_type": problem,
            "project_name": title, "columns": columns, "tags": tags,
            "fresh_at": to_iso(now.replace(microsecond=0) - __import__("datetime").timedelta(
                days=rng.randint(0, 365))),
            "owner_name": owner.name, "owner_teams": [f"t{rng.randrange(20)}"],
            "audience": listing.audience([])}
        docs.append(listing.to_document())
    db.listings.collection.insert_many(docs)


def python_scan(db: Database, user, args: dict) -> list[dict]:
    """The baseline: read every listing and filter, match and sort in Python."""
    terms = search_terms(args.get("q"))
    principals = set(audience_of(user))
    tags = [normalise_tag(t) for t in args.get("tags", [])]
    ranges = [parse_metric(m) for m in args.get("metrics", [])]
    ops = {"$gte": lambda a, b: a >= b, "$gt": lambda a, b: a > b,
           "$lte": lambda a, b: a <= b, "$lt": lambda a, b: a < b}
    found = []
    for doc in db.listings.collection.find({}):
        if doc.get("status") != "published" or not principals & set(doc.get("audience") or []):
            continue
        if tags and not set(tags) <= set(doc.get("tags") or []):
            continue
        if args.get("problem") and doc.get("problem_type") != args["problem"]:
            continue
        if args.get("columns") and not set(args["columns"]) <= set(doc.get("columns") or []):
            continue
        if any(not isinstance(doc.get(metric_field(n)), float) or
               not ops[op](doc[metric_field(n)], v) for n, op, v in ranges):
            continue
        if terms:
            text = " ".join(str(doc.get(f) or "") for f in ("title", "summary", "readme",
                                                             "project_name", "columns", "tags"))
            words = set(search_terms(text.replace("-", " ")) if len(text) < 100_000 else [])
            if not all(any(w.startswith(t) for w in words) for t in terms):
                continue
        found.append(doc)
    found.sort(key=lambda d: d.get("fresh_at") or "", reverse=True)
    return found[:20]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10, help="times each query runs")
    parser.add_argument("--database", help="a DATABASE_URL (default: SQLite in a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/catalog.db"
        db = Database.from_url(url)
        db.ensure_indexes()
        users = [db.users.add(User(email=f"u{i}@example.com", name=f"User {i}",
                                   password_hash="!")) for i in range(50)]
        started = time.perf_counter()
        make_listings(db, args.listings, users)
        print(f"{args.listings} listings written in {time.perf_counter() - started:.1f} s "
              f"({url.split(':')[0]})")
        caller = users[0]
        caller.team_ids = frozenset({"t3", "t7"})
        ctx = Context(Platform(db=db, resolver=Quiet(), notifier=Quiet(), runner=Quiet(),
                               box=Quiet(), model_server=Quiet()), caller)
        platform_ms, scan_ms, rows = [], [], []
        for query in QUERIES:
            search(ctx, **query)  # warm-up: caches, the first statement's plan
            ours, theirs = [], []
            for _ in range(args.rounds):
                began = time.perf_counter()
                items, total = search(ctx, **query)
                ours.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                python_scan(db, caller, query)
                theirs.append((time.perf_counter() - began) * 1000)
            platform_ms += ours
            scan_ms += theirs
            rows.append((query, total, statistics.median(ours), statistics.median(theirs)))
        db.close()
    print(f"\n{'query':<66} {'hits':>6} {'search ms':>10} {'scan ms':>9}")
    for query, total, ours, theirs in rows:
        text = ", ".join(f"{k}={v}" for k, v in query.items())
        print(f"{text[:66]:<66} {total:>6} {ours:>10.2f} {theirs:>9.1f}")
    p50, p95 = percentile(platform_ms, 0.5), percentile(platform_ms, 0.95)
    b50, b95 = percentile(scan_ms, 0.5), percentile(scan_ms, 0.95)
    verdict = "PASS" if p95 < TARGET_P95_MS else "FAIL"
    print(f"\n{'':<22} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'catalog search':<22} {p50:>8.2f} {p95:>8.2f}   target p95 < {TARGET_P95_MS:.0f} ms: "
          f"{verdict}")
    print(f"{'Python scan baseline':<22} {b50:>8.2f} {b95:>8.2f}   ratio p95 scan/search: "
          f"{b95 / p95:.1f}x")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
