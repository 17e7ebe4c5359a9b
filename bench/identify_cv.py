"""Leave-one-trajectory-out cross-validation of `twin identify` on the shipped recordings.

For each trajectory of a servo model, fit on the recordings of every other trajectory
and replay the held-out ones. Prints, per recording: the ideal servo (position = goal),
the default catalogue model, and the identified model fitted without that trajectory;
then the mean of each. Run: python bench/identify_cv.py [--evaluations N]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

from servo_core.catalogue import servo_spec
from twin.identify import identify
from twin.recordings import Recording, read_recording
from twin.replay import replay

DATA = Path(__file__).resolve().parents[1] / "data" / "servo-logs"


def folds(recordings: list[Recording]) -> dict[str, list[Recording]]:
    by_trajectory: dict[str, list[Recording]] = defaultdict(list)
    for r in recordings:
        by_trajectory[r.trajectory].append(r)
    return dict(sorted(by_trajectory.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evaluations", type=int, default=300)
    args = parser.parse_args()
    recordings = [read_recording(p) for p in sorted(DATA.glob("*.json"))]
    by_model: dict[str, list[Recording]] = defaultdict(list)
    for r in recordings:
        by_model[r.model].append(r)
    print("| recording | ideal servo | default model | identified (held out) |")
    print("| --- | ---: | ---: | ---: |")
    for model, recs in sorted(by_model.items()):
        rows = []
        for trajectory, held in folds(recs).items():
            train = [r for r in recs if r.trajectory != trajectory]
            start = time.perf_counter()
            fit = identify(train, model, max_evaluations=args.evaluations)
            for r in held:
                default = replay(r, spec=servo_spec(model)).mae_rad
                fitted = replay(r, spec=fit.spec)
                rows.append((r.name, fitted.ideal_mae_rad, default, fitted.mae_rad))
            print(f"<!-- {model} without {trajectory}: {time.perf_counter() - start:.0f} s -->", flush=True)
        for name, ideal, default, fitted in rows:
            print(f"| {name} | {ideal:.3f} | {default:.3f} | {fitted:.3f} |", flush=True)
        n = len(rows)
        means = [sum(row[k] for row in rows) / n for k in (1, 2, 3)]
        ideal, default, fitted = (f"**{m:.4f}**" for m in means)
        print(f"| **{model} mean ({n})** | {ideal} | {default} | {fitted} |", flush=True)


if __name__ == "__main__":
    main()
