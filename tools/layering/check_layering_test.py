"""check_layering.py on fabricated dependency graphs."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_layering as c  # noqa: E402

GRAPH = '''digraph mygraph {
  node [shape=box];
  "//nn:linear" -> "//autograd:functions"
  "//nn:linear" -> "//tensor:ops\\n//tensor:random"
  "//models/lenet:lenet" -> "//nn:linear"
  "//tools:training" -> "@absl//:status"
  "//tools/dashboard:dashboard" -> "//tools:training"
  "//third_party:wiring_test" -> "//bench:peak"
}
'''


class CheckLayeringTest(unittest.TestCase):

    def test_parses_edges_and_splits_factored_nodes(self):
        edges = c.parse_graph(GRAPH)
        self.assertIn(("//nn:linear", "//tensor:ops"), edges)
        self.assertIn(("//nn:linear", "//tensor:random"), edges)
        self.assertEqual(len(edges), 7)

    def test_downward_same_package_external_and_third_party_edges_pass(self):
        problems, used = c.violations(c.parse_graph(GRAPH), exceptions={})
        self.assertEqual(problems, [])
        self.assertEqual(used, set())

    def test_an_upward_edge_fails_naming_both_ends(self):
        problems, _ = c.violations([("//tensor:ops", "//nn:module")],
                                   exceptions={})
        self.assertEqual(len(problems), 1)
        self.assertIn("//tensor:ops -> //nn:module", problems[0])
        self.assertIn("'tensor' (rank 0) may not depend on 'nn' (rank 2)",
                      problems[0])

    def test_an_edge_between_packages_of_one_rank_fails(self):
        problems, _ = c.violations([("//optim:sgd", "//nn:module")],
                                   exceptions={})
        self.assertEqual(len(problems), 1)

    def test_an_unknown_package_fails(self):
        problems, _ = c.violations([("//newpkg:x", "//tensor")],
                                   exceptions={})
        self.assertEqual(len(problems), 1)
        self.assertIn("'newpkg' is not in the layer order", problems[0])

    def test_exceptions_match_only_their_edges(self):
        exceptions = {(r"//models/\w+:train", r"//tools:trainer_main"): ""}
        edges = [("//models/lenet:train", "//tools:trainer_main"),
                 ("//models:spec", "//tools:training")]
        problems, used = c.violations(edges, exceptions=exceptions)
        self.assertEqual(used, set(exceptions))
        self.assertEqual(len(problems), 1)
        self.assertIn("//models:spec -> //tools:training", problems[0])


if __name__ == "__main__":
    unittest.main()
