#!/usr/bin/env python3
"""N rows of pricewatch.observations as CSV, shaped like `kangyi bench prices ingest`'s (four commodities,
20 outlets of 中原区, observed over the last hour): the `\\copy` baseline of make bench."""
import datetime
import sys

n = int(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
commodities = ["pork", "eggs", "rice", "mask_n95"]
for i in range(1, n + 1):
    observed = (now - datetime.timedelta(microseconds=(n - i) * 3600 * 1_000_000 // n)).isoformat()
    price = 1000 + i % 97
    quantity = 1 if i % 4 == 3 else 500
    sys.stdout.write(f"410102,{commodities[i % 4]},BENCH-{i % 20 + 1},{observed},copy-bench,c{i},outlet_feed,{price},{quantity},"
                     f"{900 if i % 3 == 0 else 0},{price},{900 if i % 3 == 0 else 0}\n")
