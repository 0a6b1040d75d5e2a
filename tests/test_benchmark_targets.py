"""``benchmarks/_targets.py``: each ratio against a peer, on the means and against its best."""

from __future__ import annotations

import pytest

from benchmarks._jobs import Measurement
from benchmarks._results import Results, Sample
from benchmarks._targets import Target, targets, targets_section

WORKERS, PEER = "asmtp/workers/asyncio", "aiosmtplib/workers/asyncio"
CPU_TARGET = "50 connections CPU/msg ≤ 0.5x aiosmtplib 50 connections (1 KB)"
RATE_TARGET = "50 connections msg/s ≥ 2x aiosmtplib 50 connections (1 KB)"


def _sample(cpu_us: float, rate: float, messages: int = 1000) -> Sample:
    return Sample(Measurement(messages / rate, cpu_us * messages / 1e6, messages))


def _results(mine: list[Sample], peer: list[Sample]) -> Results:
    return Results(throughput={(WORKERS, "1k"): mine, (PEER, "1k"): peer})


def _target(results: Results, text: str) -> Target:
    return next(target for target in targets(results) if target.text == text)


def test_a_peer_in_two_modes_gives_both_ratios() -> None:
    # The peer's repetitions: 150 and 220 µs (mean 185), 6,000 and 4,000 msg/s (mean 5,000).
    results = _results(
        [_sample(80, 11_000), _sample(80, 11_000)], [_sample(150, 6_000), _sample(220, 4_000)]
    )
    cpu = _target(results, CPU_TARGET)
    assert cpu.measured == pytest.approx(80 / 185)
    assert cpu.against_best == pytest.approx(80 / 150)
    assert (cpu.met, cpu.verdict) == (True, "met on the means only")
    rate = _target(results, RATE_TARGET)
    assert rate.measured == pytest.approx(11_000 / 5_000)
    assert rate.against_best == pytest.approx(11_000 / 6_000)
    assert (rate.met, rate.verdict) == (True, "met on the means only")


@pytest.mark.parametrize(
    ("mine_cpu", "verdict"),
    [(70, "met"), (80, "met on the means only"), (95, "**missed**")],
)
def test_the_verdict_says_which_ratios_reach_the_goal(mine_cpu: float, verdict: str) -> None:
    results = _results([_sample(mine_cpu, 10_000)], [_sample(150, 5_000), _sample(220, 4_000)])
    assert _target(results, CPU_TARGET).verdict == verdict


def test_targets_without_a_peer_best_keep_one_verdict() -> None:
    unmeasured = _target(_results([], []), CPU_TARGET)
    assert (unmeasured.measured, unmeasured.against_best, unmeasured.verdict) == (
        None,
        None,
        "not measured",
    )
    round_trips = Target("round trips per message with PIPELINING = 2", 2.06, 2.25, False, " RT")
    assert (round_trips.against_best, round_trips.verdict) == (None, "met")


def test_the_table_shows_the_ratio_against_the_peer_best() -> None:
    results = _results([_sample(80, 11_000)], [_sample(150, 6_000), _sample(220, 4_000)])
    lines = targets_section(results)
    assert "| target | measured | against the peer's best repetition |  |" in lines
    row = next(line for line in lines if line.startswith(f"| {CPU_TARGET} |"))
    assert row == f"| {CPU_TARGET} | 0.43x | 0.53x | met on the means only |"
