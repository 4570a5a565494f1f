"""The bureau's journal layout: runs of consecutive events per document, and journals
written one document per event still restored (bureau.store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bureau.store import JOURNAL, RUN_BYTES, SNAPSHOTS, BureauStore, journal_runs
from chuhai.expo.v1 import events_pb2
from runtime.adapters.events import decode_envelope, envelope_for


def visit(buyer_id: str) -> tuple[str, bytes]:
    envelope = envelope_for(
        events_pb2.ExhibitorVisited(buyer_id=buyer_id, buyer_country="DE"),
        aggregate_id=buyer_id,
        producer="expo",
    )
    return envelope.event_id, envelope.SerializeToString()


def test_a_batch_is_journaled_in_runs_with_contiguous_positions_under_the_size_limit() -> None:
    big = RUN_BYTES // 3
    entries = [(f"e{i}", bytes(big)) for i in range(7)] + [("huge", bytes(RUN_BYTES + 1))]

    runs = list(journal_runs(entries, 10))

    assert [(run["_id"], run["seq"]) for run in runs] == [(11, 13), (14, 16), (17, 17), (18, 18)]
    assert [i for run in runs for i in run["event_ids"]] == [i for i, _ in entries]
    assert [e for run in runs for e in run["envelopes"]] == [e for _, e in entries]
    # Only an envelope over the limit on its own makes a run over it.
    assert [sum(map(len, run["envelopes"])) <= RUN_BYTES for run in runs] == [1, 1, 1, 0]


def test_a_small_batch_is_one_document() -> None:
    entries = [visit(f"b{i}") for i in range(2000)]

    [run] = journal_runs(entries, 0)

    assert (run["_id"], run["seq"], len(run["event_ids"])) == (1, 2000, 2000)


class Cursor:
    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self._documents = documents

    def sort(self, key: str, _direction: int) -> Cursor:
        return Cursor(sorted(self._documents, key=lambda d: d[key]))

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for document in self._documents:
            yield document


class Collection:
    """What BureauStore.load and append ask of a collection, over a list."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    async def create_index(self, _keys: Any) -> None:
        return None

    def _matching(self, where: dict[str, Any]) -> list[dict[str, Any]]:
        def matches(document: dict[str, Any]) -> bool:
            for field, condition in where.items():
                if isinstance(condition, dict):
                    [(op, value)] = condition.items()
                    if not {"$lte": document[field] <= value, "$gt": document[field] > value}[op]:
                        return False
                elif document[field] != condition:
                    return False
            return True

        return [d for d in self.documents if matches(d)]

    def find(self, where: dict[str, Any], _projection: Any = None) -> Cursor:
        return Cursor(self._matching(where))

    async def find_one(
        self, where: dict[str, Any], _projection: Any = None, sort: Any = None
    ) -> dict[str, Any] | None:
        found = self._matching(where)
        if sort:
            [(key, direction)] = sort
            found.sort(key=lambda d: d[key], reverse=direction < 0)
        return found[0] if found else None

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        self.documents.extend(documents)

    async def replace_one(
        self, where: dict[str, Any], document: dict[str, Any], upsert: bool
    ) -> None:
        self.documents = [
            *(d for d in self.documents if d not in self._matching(where)),
            {**where, **document},
        ]


class Database(dict[str, Collection]):
    def __missing__(self, name: str) -> Collection:
        self[name] = Collection()
        return self[name]


async def test_events_journaled_one_per_document_and_in_runs_are_all_restored() -> None:
    db = Database()
    earlier = [visit(f"old{i}") for i in range(3)]
    # The layout before runs: one document per event, keyed by its id.
    db[JOURNAL].documents = [
        {"_id": event_id, "seq": seq, "envelope": raw}
        for seq, (event_id, raw) in enumerate(earlier, start=1)
    ]
    store = BureauStore(None, db)  # type: ignore[arg-type]
    figures = await store.load()
    later = [visit(f"new{i}") for i in range(4)]
    for _, raw in later:
        figures.apply(decode_envelope(raw))
    await store.append(later)
    assert await store.snapshot(figures, force=True)

    restored = await BureauStore(None, db).load()  # type: ignore[arg-type]
    # A snapshot this version cannot read: the figures are rebuilt from both layouts.
    db[SNAPSHOTS].documents[0]["state"] = {"format": 1}
    rebuilt = await BureauStore(None, db).load()  # type: ignore[arg-type]

    for figures in (restored, rebuilt):
        assert figures.headline().events_applied == 7
        assert figures.headline().buyers == 7
        # Every id is known as applied: a redelivery from either layout is refused.
        assert figures.apply(decode_envelope(earlier[0][1])) is False
        assert figures.apply(decode_envelope(later[-1][1])) is False
