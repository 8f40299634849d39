"""Log privacy as a test: after the whole suite, no phone number, name, address or ID number a test sent
appears in any kangyi log or in PostgreSQL's server logs.

Scans every log under the given folders: JSON log lines without their request ids (random hex, which can
look like digits), and PostgreSQL's server.log as it is. Looks for mainland mobile numbers in any
spelling the tests use, 18-character resident ID numbers, and the names and addresses the tests send.
"""
import pathlib
import re
import sys

PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?![0-9A-Za-z])")
RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
HEX_ID = re.compile(r"[0-9a-f]{32}")
SENT = ["张三", "李四", "王五", "赵六", "中原区中山路1号", "中原区中山路", "中原区\x00", "家里没有米", "降压药", "断粮"]


def scan(path):
    found = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        text = HEX_ID.sub("", line)
        for pattern in (PHONE, RESIDENT_ID):
            found += [(number, m.group()) for m in pattern.finditer(text)]
        found += [(number, s) for s in SENT if s in text]
    return found


def main(folders):
    logs = [p for folder in folders for p in pathlib.Path(folder).rglob("*.log") if p.is_file()]
    leaks = [(log, n, what) for log in logs for n, what in scan(log)]
    for log, n, what in leaks[:20]:
        print(f"personal data in {log}:{n}: {what!r}")
    print(f"privacy: {len(logs)} logs scanned, {len(leaks)} leaks")
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
