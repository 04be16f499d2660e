"""check_layering.py on fabricated dependency graphs."""

import unittest

from tools.layering import check_layering as c

GRAPH = '''digraph mygraph {
  node [shape=box];
  "//nn:linear" -> "//autograd:functions"
  "//nn:linear" -> "//tensor:ops\\n//tensor:random"
  "//models/lenet:lenet" -> "//nn:linear"
  "//train:training" -> "@absl//:status"
  "//train/dashboard:dashboard" -> "//train:training"
  "//third_party:wiring_test" -> "//bench:peak"
}
'''


RANKS, TARGET_PACKAGES = c.read_layers()


def check(edges):
    return c.violations(edges, RANKS, TARGET_PACKAGES)


class CheckLayeringTest(unittest.TestCase):

    def test_reads_the_order_from_layers_bzl(self):
        self.assertEqual(RANKS["tensor"], 0)
        self.assertLess(RANKS["models"], RANKS["train"])
        self.assertLess(RANKS["train"], RANKS["tools"])
        self.assertEqual(RANKS["nn"], RANKS["optim"])

    def test_parses_edges_and_splits_factored_nodes(self):
        edges = c.parse_graph(GRAPH)
        self.assertIn(("//nn:linear", "//tensor:ops"), edges)
        self.assertIn(("//nn:linear", "//tensor:random"), edges)
        self.assertEqual(len(edges), 7)

    def test_downward_same_package_external_and_third_party_edges_pass(self):
        self.assertEqual(check(c.parse_graph(GRAPH)), [])

    def test_an_upward_edge_fails_naming_both_ends(self):
        problems = check([("//tensor:ops", "//nn:module")])
        self.assertEqual(len(problems), 1)
        self.assertIn("//tensor:ops -> //nn:module", problems[0])
        self.assertIn("'tensor' (layer 0) may not depend on 'nn' (layer 2)",
                      problems[0])

    def test_an_edge_between_packages_of_one_layer_fails(self):
        self.assertEqual(len(check([("//optim:sgd", "//nn:module")])), 1)

    def test_an_unknown_package_fails(self):
        problems = check([("//newpkg:x", "//tensor")])
        self.assertEqual(len(problems), 1)
        self.assertIn("'newpkg' is not in the layer order", problems[0])

    def test_train_binaries_of_the_models_sit_in_the_train_layer(self):
        self.assertEqual(check([
            ("//models/lenet:train", "//train:trainer_main"),
            ("//train:distributed_training_test", "//models/lenet:train"),
            ("//tools:trainer_binary_test", "//models/mlp:train"),
        ]), [])
        # Only the binaries: a model library may not reach up, and a lower
        # layer may not use a train binary.
        self.assertEqual(len(check([
            ("//models/lenet:lenet", "//train:training"),
            ("//models:spec", "//models/lenet:train"),
            ("//models/lenet:train_helper", "//train:training"),
        ])), 3)


if __name__ == "__main__":
    unittest.main()
