"""The docs' performance page: its explanatory text, and the results put between markers."""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["DOCS_PAGE", "ROOT", "write_docs"]

ROOT: Final = Path(__file__).resolve().parent.parent
DOCS_PAGE: Final = ROOT / "docs" / "performance.md"
START_MARK: Final = "<!-- benchmark results: start (written by benchmarks/run.py --write-docs) -->"
END_MARK: Final = "<!-- benchmark results: end -->"


_PAGE_TEMPLATE: Final = """# Performance

How fast asmtp sends, how much CPU and memory it needs doing so, and how many network
round trips each message costs, measured side by side with
[aiosmtplib](https://aiosmtplib.readthedocs.io/), the standard library's `smtplib`, and
Postfix's own C load generator `smtp-source` as the ceiling.

## Method

- **Server**: Postfix's `smtp-sink` on 127.0.0.1 (an ephemeral port), which accepts and
  discards mail in a single C process and advertises PIPELINING. Its CPU use is reported
  next to every figure to show it is not the bottleneck, and its message counter is checked
  after every measurement: every message sent arrived.
- **Clients**, each in a fresh process per measurement, sending the same bytes (the same
  message file for `smtp-source -F`), with every reply checked:
  - asmtp on one connection, sending one message after another, and in batches of 100
    with `sendmail_many` (asyncio and uvloop); asmtp's `SMTPPool(max_connections=50)`
    with one task per message (started with `asyncio.gather` under asyncio and uvloop,
    as for `aiosmtplib.send()`; an anyio task group under trio); asmtp with 50
    connections each owned by a worker task pulling from a shared queue; under asyncio,
    uvloop and trio;
  - aiosmtplib on one connection and with 50 worker connections (asyncio and uvloop), and
    `aiosmtplib.send()` (a new connection per message) under a semaphore of 50, and
    asmtp's own one-shot `asmtp.sendmail()` the same way;
  - a raw asyncio client written for the benchmark (the pipelined commands and the
    dot-stuffed body as two writes per message, reply codes checked, nothing else) with 50
    connections on asyncio and uvloop: the floor for any Python client on that loop;
  - `smtplib` on one connection, and 50 threads each with its own connection;
  - `smtp-source -d` with 1 and with 50 sessions (it does not pipeline).
- **Shapes**: 1 KB to 1 recipient, 100 KB to 1 recipient, 1 KB to 10 recipients.
- **Figures**: messages per second (connection set-up and QUIT included) and client CPU
  seconds per message (`time.process_time()`, or `RUSAGE_CHILDREN` for `smtp-source`);
  the mean of several repetitions, interleaved so drift affects every case alike.
- **Round trips**: a loopback proxy adds a fixed delay in each direction; the time per
  message on an open connection divided by the round-trip time. `smtp-sink` has no
  CHUNKING, so the CHUNKING figure uses a small scripted server that advertises PIPELINING
  and CHUNKING.
- **Memory**: one large message sent once, in a fresh process; the peak resident set size
  (`VmHWM`, reset just before the send) and, in a separate process, the tracemalloc peak,
  above the baseline taken once the message is in memory or its file is open.
- **Interference**: on a shared machine, a sample during which other processes used more
  than 15% of a CPU (machine user time minus ours and the sink's) is taken again, up to 3
  times; how many were kept anyway is reported with the results.
- **Memory layout**: a Python process's string hash seed (`PYTHONHASHSEED`, random by
  default) and the size of its environment decide where its objects land in memory, and
  that can move a client's speed by a fifth to a third, in modes. aiosmtplib with 50
  connections on asyncio took 148 µs of CPU per message with seeds 0 and 2, and 225 µs
  with seeds 1 and 3; asmtp as of 6a83666, on one connection and at one hash seed, took
  about 185 µs with one environment size and 230 to 300 µs with eight others. So
  repetition N runs every case at hash seed N and an environment padded by a size drawn
  from N, each client at the same layouts, and the throughput figures are means over the
  repetitions: a median would pick one mode, and a ratio against it would swing from run
  to run.

The figures depend on the machine; compare ratios, not absolute numbers, across machines.

## Running it

```sh
python benchmarks/run.py            # full run, about 10 minutes on 2 cores
python benchmarks/run.py --quick    # a smoke run in under a minute
python benchmarks/run.py --write-docs   # also replace the results below
python benchmarks/run.py --asmtp-ref HEAD   # measure a commit, not the working tree
```

It needs Postfix's `smtp-sink` and `smtp-source` (Debian: `apt-get install postfix`,
choosing "No configuration"; as root on Debian the script installs them itself), plus
aiosmtplib, uvloop and trio.

## Latest results

"""


def write_docs(report: str, page: Path = DOCS_PAGE) -> None:
    """Put ``report`` between the markers of the docs page, creating the page if needed."""
    block = f"{START_MARK}\n\n{report}\n{END_MARK}\n"
    text = page.read_text(encoding="utf-8") if page.exists() else _PAGE_TEMPLATE
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + block + (f"\n{tail}" if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    page.write_text(text, encoding="utf-8")
