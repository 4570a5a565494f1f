"""`make bench`: the platform's performance figures against the targets of issue 12, as
ratios against baselines measured in the same run (`python -m bench --help`).
`bench/outbox_bench.py` measures the outbox alone: a write with its event against a plain
insert, and the relay's batches against one event per pass."""
