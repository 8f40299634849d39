#!/usr/bin/env python3
"""N rows of checkpoint.vehicle_logs as CSV, shaped like `kangyi bench upload`'s logs (two people, a Henan
or Hubei plate, observed over the last hour): the `\\copy` baseline of make bench."""
import datetime
import sys

n = int(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
out = sys.stdout
for i in range(1, n + 1):
    observed = (now - datetime.timedelta(microseconds=(n - i) * 3600 * 1_000_000 // n)).isoformat()
    hubei = i % 7 == 0
    plate = ("鄂A" if hubei else "豫A") + f"{i % 100000:05d}"
    fever = i % 50 == 0
    # "" is an empty string in CSV; an empty field would be NULL.
    out.write(f"ZZ-YAOJIA,copy-bench,{i},{observed},{plate},blue,car,inbound,\"\",{'420000' if hubei else '410000'},"
              f"{'420100' if hubei else '410100'},\"{{{378 if fever else 365},366}}\",\"{{green,green}}\",2,{1 if fever else 0},0,0,\"\","
              f"410102,false,false\n")
