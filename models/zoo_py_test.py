"""zoo.py reads every spec that //models:zoo_json prints."""

import unittest

from models import zoo


class ZooTest(unittest.TestCase):

    def test_every_model_in_the_zoo_order(self):
        self.assertEqual(zoo.names(), [
            "softmax", "mlp", "mlp_dropout", "lenet", "bn_lenet", "alexnet",
            "vgg", "nin", "googlenet", "resnet", "densenet"])

    def test_a_spec_has_its_recipe_and_sizes(self):
        s = zoo.spec("mlp_dropout")
        self.assertGreater(s["recipe"]["lr"], 0)
        # No Bazel label: //models:train --model=<name> trains any of them.
        self.assertEqual(sorted(s), [
            "description", "max_input_size", "min_input_size", "name",
            "quick_input_size", "recipe"])
        for name in zoo.names():
            m = zoo.spec(name)
            self.assertLessEqual(m["min_input_size"], m["quick_input_size"])
            self.assertLessEqual(m["recipe"]["input_size"], m["max_input_size"])

    def test_unknown_model_names_the_known_ones(self):
        with self.assertRaisesRegex(KeyError, "lenet7.*known models: softmax"):
            zoo.spec("lenet7")


if __name__ == "__main__":
    unittest.main()
