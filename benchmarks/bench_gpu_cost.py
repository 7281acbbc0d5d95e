"""For every shared fixture: the chosen $/h (seed and cost policies) against the cheapest fitting option.

The baseline is measured in the same run by brute force, independently of the cost policy's search:
every catalogue type at every count one container takes, forced with `--gpu TYPE:N`, and the
cheapest that the estimate fits. A ratio of 1.00 means the policy found that cheapest option; the
seed policy's ratio is what the user's rules cost over it. Also timed: one `choose_gpu` (which answers
both policies) against the brute force.

Requests come from tests/gpu/gpu_fixture_requests.py (shapes written by hand where the listings lack
them). NOTE: once `modelformats.planner` plans the shared listings end to end, run with `--planner` to
add its chosen $/h per listing; until then that column says why it could not.

    python benchmarks/bench_gpu_cost.py [--planner]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "gpu"))

from gpu_fixture_requests import FIXTURES, Fixture  # noqa: E402 - the fixture table lives in tests/gpu

from modelformats.errors import InvalidRequestError, NoFittingGpuError  # noqa: E402
from modelformats.gpu import GPU_CATALOGUE, GpuRequest, choose_gpu  # noqa: E402


def cheapest_by_brute_force(request: GpuRequest) -> tuple[str, float] | None:
    best: tuple[float, int, str] | None = None
    for gpu in GPU_CATALOGUE:
        for count in range(1, gpu.max_count + 1):
            text = f"{gpu.name}:{count}"
            try:
                d = choose_gpu(replace(request, gpu=text), policy="cost")
            except (NoFittingGpuError, InvalidRequestError):
                continue
            key = (d.price_per_hour, count, text)
            if best is None or key < best:
                best = key
            break  # more GPUs of the same type only cost more
    return (best[2], best[0]) if best is not None else None


def planner_price(fixture: Fixture, policy: str) -> str:
    try:
        from modelformats.planner import PlanOptions, plan
        from modelformats.sources.recorded import RecordedSource

        listing = ROOT / "tests" / "data" / "listings" / fixture.listing
        repo_id = json.loads(listing.read_text())["repo_id"]
        source = RecordedSource.from_paths([listing.parent])
        gpu = plan(repo_id, source=source, options=PlanOptions(policy=policy)).gpu
    except Exception as exc:
        return f"n/a ({type(exc).__name__})"
    if gpu is None:
        return "n/a (no GPU)"
    return f"{gpu.name}:{gpu.count} ${gpu.price_per_hour:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planner", action="store_true", help="also plan each listing with modelformats.planner")
    args = parser.parse_args()

    header = f"{'fixture':52} {'seed':>18} {'cost':>18} {'cheapest':>18} {'seed/min':>8} {'cost/min':>8}"
    print(header + ("  planner (seed)" if args.planner else ""))
    print("-" * len(header))
    t_policy = t_brute = 0.0
    seed_sum = cost_sum = min_sum = 0.0
    for fixture in FIXTURES:
        start = time.perf_counter()
        seed = choose_gpu(fixture.request, policy="seed")
        t_policy += time.perf_counter() - start
        cost = seed.other
        start = time.perf_counter()
        cheapest = cheapest_by_brute_force(fixture.request)
        t_brute += time.perf_counter() - start
        if cost is None or cheapest is None:
            print(f"{fixture.label[:52]:52} nothing fits under one policy")
            continue
        low = cheapest[1]
        seed_sum, cost_sum, min_sum = (
            seed_sum + seed.price_per_hour,
            cost_sum + cost.price_per_hour,
            min_sum + low,
        )
        row = (
            f"{fixture.label[:52]:52} {seed.choice.modal_gpu + f' ${seed.price_per_hour:.2f}':>18} "
            f"{cost.choice.modal_gpu + f' ${cost.price_per_hour:.2f}':>18} "
            f"{cheapest[0] + f' ${low:.2f}':>18} {seed.price_per_hour / low:8.2f} "
            f"{cost.price_per_hour / low:8.2f}"
        )
        print(row + (f"  {planner_price(fixture, 'seed')}" if args.planner else ""))
    print("-" * len(header))
    print(
        f"{'all fixtures ($/h summed)':52} {f'${seed_sum:.2f}':>18} {f'${cost_sum:.2f}':>18} "
        f"{f'${min_sum:.2f}':>18} "
        f"{seed_sum / min_sum:8.2f} {cost_sum / min_sum:8.2f}"
    )
    print(
        f"time: choose_gpu (both policies) {1000 * t_policy / len(FIXTURES):.1f} ms per fixture; "
        f"brute force {1000 * t_brute / len(FIXTURES):.1f} ms; ratio {t_policy / t_brute:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
