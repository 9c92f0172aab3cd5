#!/usr/bin/env python3
"""Unit tests of agreement.py's resampling estimate on synthetic runs.

    cd perf/lib && python3 -m unittest test_agreement -v
"""
import json
import os
import random
import tempfile
import unittest

import agreement


def write_run(d, samples):
    """samples: {workload: {target: [per-repetition figures]}} -> d/results.json"""
    os.makedirs(d, exist_ok=True)
    summary = {w: {"label": w, "unit": "x", "targets": {t: {"samples": s} for t, s in ts.items()}}
               for w, ts in samples.items()}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump({"meta": {}, "summary": summary}, f)


class Pool(unittest.TestCase):
    def test_pairs_by_repetition_and_skips_unpaired_peers(self):
        with tempfile.TemporaryDirectory() as tmp:
            write_run(os.path.join(tmp, "a"), {"w": {"ringfs": [2, 4], "p": [1, 2], "short": [1]}})
            write_run(os.path.join(tmp, "b"), {"w": {"ringfs": [3], "p": [1]}})
            pool = agreement.pooled_ratios([os.path.join(tmp, "a"), os.path.join(tmp, "b")])
        self.assertEqual(pool, {("w", "p"): [2.0, 2.0, 3.0]})


class Simulate(unittest.TestCase):
    def test_a_noiseless_ratio_always_agrees(self):
        mean_ok, p_all, n = agreement.simulate({("w", "p"): [2.0] * 6}, 3, 50, 0.15, random.Random(0))
        self.assertEqual((mean_ok, p_all, n), (1.0, 1.0, 1))

    def test_a_ratio_that_swings_twofold_rarely_agrees_and_more_reps_help(self):
        pool = {("w", "p"): [1.0, 2.0] * 3}
        few = agreement.simulate(pool, 1, 400, 0.15, random.Random(0))
        many = agreement.simulate(pool, 15, 400, 0.15, random.Random(0))
        self.assertLess(few[0], 0.7)   # one repetition each: the two runs agree about half the time
        self.assertGreater(many[0], few[0])

    def test_all_agree_needs_every_ratio(self):
        pool = {("w", "p"): [1.0] * 4, ("w", "q"): [1.0, 3.0] * 2}
        mean_ok, p_all, n = agreement.simulate(pool, 1, 400, 0.15, random.Random(0))
        self.assertEqual(n, 2)
        self.assertGreaterEqual(mean_ok, 1.0)
        self.assertLess(p_all, 0.8)


class Main(unittest.TestCase):
    def test_an_unreadable_run_is_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(agreement.main([os.path.join(tmp, "missing")]), 2)


if __name__ == "__main__":
    unittest.main()
