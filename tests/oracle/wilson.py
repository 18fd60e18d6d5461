#!/usr/bin/env python3
"""The outside oracle for ion-plan's evidence arithmetic (tests/evidence_oracle.rs runs it).

Prints, one per line, tab-separated:
  wilson  K  N  C  LO  HI   -- scipy.stats.binomtest(k, n).proportion_ci(c, method="wilson")
  z       C  Z              -- scipy.stats.norm.ppf(1 - (1 - c) / 2)
Floats are printed with repr, which round-trips exactly.
"""

from scipy.stats import binomtest, norm

CONFIDENCES = [0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 0.9999]
COUNTS = [1, 2, 3, 10, 50, 100, 765, 800, 1000, 12345, 1_000_000]


def ks(n):
    """k = 0, k = n, and a few in between."""
    picks = {0, n, 1, n - 1, n // 2, n // 10, n // 200}
    return sorted(k for k in picks if 0 <= k <= n)


def main():
    for c in CONFIDENCES:
        print(f"z\t{c!r}\t{float(norm.ppf(1 - (1 - c) / 2))!r}")
    for n in COUNTS:
        for k in ks(n):
            for c in CONFIDENCES:
                ci = binomtest(k, n).proportion_ci(confidence_level=c, method="wilson")
                print(f"wilson\t{k}\t{n}\t{c!r}\t{float(ci.low)!r}\t{float(ci.high)!r}")


if __name__ == "__main__":
    main()
