#!/usr/bin/env python3
"""Unit tests of compare.py (and of report.py's per-repetition ratio it reads) on synthetic data.

    cd perf/lib && python3 -m unittest test_compare -v
"""
import contextlib
import io
import json
import os
import tempfile
import unittest

import compare
import report


def results(ratios=None, medians=None):
    """A minimal results.json: ratios {(wid, peer): median ratio} in report.py's current
    form, or medians {(wid, target): median} in the older form without ratios."""
    summary = {}
    for (wid, peer), r in (ratios or {}).items():
        e = summary.setdefault(wid, {"label": wid, "unit": "x", "targets": {"ringfs": {"median": 1.0}}, "ratios": {}})
        e["targets"][peer] = {"median": 1.0}
        e["ratios"][peer] = {"median": r, "per_rep": [r] if r is not None else [], "of_medians": r}
    for (wid, t), m in (medians or {}).items():
        e = summary.setdefault(wid, {"label": wid, "unit": "x", "targets": {}})
        e["targets"][t] = {"median": m}
    return {"meta": {}, "summary": summary, "raw": []}


class Agree(unittest.TestCase):
    def test_within_and_outside(self):
        self.assertTrue(compare.agree(1.0, 1.0, 0.15))
        self.assertTrue(compare.agree(1.10, 1.0, 0.15))
        self.assertTrue(compare.agree(0.9, 1.0, 0.15))
        self.assertFalse(compare.agree(1.2, 1.0, 0.15))
        self.assertFalse(compare.agree(0.8, 1.0, 0.15))

    def test_exactly_at_the_tolerance_agrees(self):
        self.assertTrue(compare.agree(1.15, 1.0, 0.15))
        self.assertTrue(compare.agree(0.0345, 0.03, 0.15))  # 1.15 with float rounding
        self.assertTrue(compare.agree(0.85, 1.0, 0.15))

    def test_is_a_over_b(self):
        # |a/b - 1|: 1.0 vs 0.87 is 1.149 (agrees), 0.87 vs 1.0 is 0.87 (agrees), but
        # 1.0 vs 0.86 is 1.163 (does not) while 0.86 vs 1.0 is 0.86 (does)
        self.assertFalse(compare.agree(1.0, 0.86, 0.15))
        self.assertTrue(compare.agree(0.86, 1.0, 0.15))

    def test_missing(self):
        self.assertIsNone(compare.agree(None, 1.0, 0.15))
        self.assertIsNone(compare.agree(1.0, None, 0.15))
        self.assertIsNone(compare.agree(1.0, 0.0, 0.15))


class Ratios(unittest.TestCase):
    def test_stored_median_of_per_rep_ratios(self):
        r = compare.ratios(results({("seq_write", "ext4"): 0.25, ("seq_write", "juicefs"): 0.8}))
        self.assertEqual(r, {("seq_write", "ext4"): 0.25, ("seq_write", "juicefs"): 0.8})

    def test_falls_back_to_of_medians(self):
        res = results({("untar", "rclone"): None})
        res["summary"]["untar"]["ratios"]["rclone"]["of_medians"] = 0.2
        self.assertEqual(compare.ratios(res), {("untar", "rclone"): 0.2})

    def test_older_results_ratio_of_medians(self):
        res = results(medians={("untar", "ringfs"): 70.0, ("untar", "rclone"): 350.0, ("untar", "ext4"): None})
        self.assertEqual(compare.ratios(res), {("untar", "rclone"): 0.2, ("untar", "ext4"): None})

    def test_no_ringfs_no_ratios(self):
        res = results(medians={("untar", "ext4"): 5000.0})
        self.assertEqual(compare.ratios(res), {})


class CompareAndRender(unittest.TestCase):
    A = {("seq_write", "ext4"): 0.26, ("seq_write", "juicefs"): 0.73, ("untar", "rclone"): 0.20,
         ("ls_cold", "juicefs"): 0.04}
    B = {("seq_write", "ext4"): 0.24, ("seq_write", "juicefs"): 0.95, ("untar", "rclone"): 0.21}

    def test_rows_cover_both_runs_in_table_order(self):
        rows = compare.compare(self.A, self.B, 0.15)
        self.assertEqual([(w, p) for w, p, *_ in rows],
                         [("seq_write", "ext4"), ("seq_write", "juicefs"), ("ls_cold", "juicefs"), ("untar", "rclone")])
        verdict = {(w, p): ok for w, p, _, _, _, ok in rows}
        self.assertEqual(verdict, {("seq_write", "ext4"): True, ("seq_write", "juicefs"): False,
                                   ("ls_cold", "juicefs"): None, ("untar", "rclone"): True})
        self.assertEqual(compare.count(rows), (2, 4))

    def test_render(self):
        md = compare.render(compare.compare(self.A, self.B, 0.15), 0.15, "run-a", "run-b")
        self.assertIn("| workload | peer | A | B | A ÷ B | agree |", md)
        self.assertIn("**no**", md)
        self.assertIn("n/a", md)
        self.assertTrue(md.rstrip().endswith("2/4 ratios agree within ±15%"))

    def test_tolerance_in_count_line(self):
        md = compare.render(compare.compare(self.A, self.A, 0.1), 0.1)
        self.assertTrue(md.rstrip().endswith("4/4 ratios agree within ±10%"))


class Main(unittest.TestCase):
    def run_main(self, a, b, *extra):
        with tempfile.TemporaryDirectory() as d:
            for name, res in (("a", a), ("b", b)):
                os.mkdir(os.path.join(d, name))
                with open(os.path.join(d, name, "results.json"), "w") as f:
                    json.dump(res, f)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = compare.main([os.path.join(d, "a"), os.path.join(d, "b"), *extra])
            return rc, out.getvalue()

    def test_all_agree_exit_0(self):
        rc, out = self.run_main(results({("untar", "rclone"): 0.20}), results({("untar", "rclone"): 0.22}))
        self.assertEqual(rc, 0)
        self.assertIn("1/1 ratios agree within ±15%", out)

    def test_one_disagrees_exit_1(self):
        rc, out = self.run_main(results({("untar", "rclone"): 0.20, ("untar", "ext4"): 0.01}),
                                results({("untar", "rclone"): 0.30, ("untar", "ext4"): 0.01}))
        self.assertEqual(rc, 1)
        self.assertIn("1/2 ratios agree", out)

    def test_tolerance_option(self):
        a, b = results({("untar", "rclone"): 0.20}), results({("untar", "rclone"): 0.25})
        self.assertEqual(self.run_main(a, b)[0], 1)                       # 0.8
        self.assertEqual(self.run_main(a, b, "--tolerance", "0.25")[0], 0)

    def test_nothing_to_compare_exit_1(self):
        rc, out = self.run_main(results(medians={("untar", "ext4"): 1.0}), results(medians={("untar", "ext4"): 1.0}))
        self.assertEqual(rc, 1)
        self.assertIn("0/0", out)

    def test_unreadable_exit_2(self):
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(compare.main(["/nonexistent/a", "/nonexistent/b"]), 2)


class PerRepRatios(unittest.TestCase):
    """report.py's ratio, which compare.py reads: the median of ringfs rep i ÷ peer rep i."""

    @staticmethod
    def raw(wid, target, values):
        return [{"workload": wid, "target": target, "rep": i + 1, "value": v} for i, v in enumerate(values)]

    def test_median_of_per_rep_ratios_not_ratio_of_medians(self):
        # load changes between repetitions (x1, x2, x0.5) moves both targets; ringfs is
        # always half the peer, which the per-rep ratios see and the medians do not
        raw = self.raw("untar", "ringfs", [50, 100, 60]) + self.raw("untar", "rclone", [100, 200, 50])
        e = report.ratio_entry(raw, "untar", "rclone", 60, 100)
        self.assertEqual(e["per_rep"], [0.5, 0.5, 1.2])
        self.assertEqual(e["median"], 0.5)
        self.assertEqual(e["of_medians"], 0.6)
        self.assertEqual(report.fmt_ratio(e), "0.50× (0.50–1.20)")

    def test_failed_rep_is_left_out(self):
        raw = self.raw("untar", "ringfs", [50, 100, 60]) + self.raw("untar", "rclone", [100, None, 120])
        e = report.ratio_entry(raw, "untar", "rclone", 60, 110)
        self.assertEqual(e["per_rep"], [0.5, 0.5])
        self.assertEqual(report.fmt_ratio(e), "0.50× (0.50–0.50)")

    def test_single_rep(self):
        e = report.ratio_entry(self.raw("untar", "ringfs", [30]) + self.raw("untar", "ext4", [3000]),
                               "untar", "ext4", 30, 3000)
        self.assertEqual(report.fmt_ratio(e), "0.01×")


if __name__ == "__main__":
    unittest.main()
