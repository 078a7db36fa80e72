"""Run every benchmark in turn: python -m bench"""

from __future__ import annotations

import importlib
import pkgutil

import bench


def main() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")):
        print(f"== {module}", flush=True)
        importlib.import_module(f"bench.{module}").main()


if __name__ == "__main__":
    main()
