"""check_layering.py on fabricated query output and .bzl trees."""

import os
import tempfile
import unittest

from tools.layering import check_layering as c

# What `bazel query --noimplicit_deps --output=xml` prints, cut down.
QUERY = '''<?xml version="1.1" encoding="UTF-8" standalone="no"?>
<query version="2">
    <rule class="cc_library" location="/w/nn/BUILD:3:11" name="//nn:linear">
        <list name="deps">
            <label value="//autograd:functions"/>
        </list>
        <rule-input name="//autograd:functions"/>
        <rule-input name="//nn:linear.cc"/>
        <rule-input name="//tensor:ops"/>
        <list name="args">
            <string value="--prompt=&#27;]0;&#9;&lt;x&gt;"/>
        </list>
    </rule>
    <source-file location="/w/nn/linear.cc:1:1" name="//nn:linear.cc"/>
    <rule class="cc_library" location="/w/models/lenet/BUILD:6:11"
          name="//models/lenet:lenet">
        <string name="generator_function" value="dive_model"/>
        <string name="generator_location" value="models/lenet/BUILD:6:11"/>
        <rule-input name="//nn:linear"/>
    </rule>
    <rule class="cc_binary" location="/w/models/lenet/BUILD:19:13"
          name="//models/lenet:train">
        <string name="generator_function" value="dive_trainer"/>
        <string name="generator_location" value="models/lenet/BUILD:19:13"/>
        <rule-input name="//models/lenet:lenet"/>
        <rule-input name="//train:trainer_main"/>
        <rule-input name="@fashion_mnist//:files"/>
    </rule>
    <rule class="cc_library" name="//train:trainer_main"><rule-input
        name="@absl//:status"/></rule>
    <rule class="cc_test" name="//train/dashboard:dashboard_test"><rule-input
        name="//models/lenet:train"/></rule>
    <rule class="cc_test" name="//third_party:wiring_test"><rule-input
        name="//bench:peak"/></rule>
</query>
'''

RANKS = c.read_layers()
MACROS = {"dive_model": "models", "dive_trainer": "train"}
TRAINERS = {"//models/lenet:train": "dive_trainer",
            "//models/mlp:train": "dive_trainer",
            "//models:train": "dive_trainer"}


def check(edges, generators=None):
    return c.violations(edges, RANKS, generators or {}, MACROS)


def write(root, path, text):
    path = os.path.join(root, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class CheckLayeringTest(unittest.TestCase):

    def test_reads_the_order_from_layers_bzl(self):
        self.assertEqual(RANKS["tensor"], 0)
        self.assertLess(RANKS["models"], RANKS["train"])
        self.assertLess(RANKS["train"], RANKS["tools"])
        self.assertEqual(RANKS["nn"], RANKS["optim"])

    def test_layers_bzl_lists_no_exceptions(self):
        with open(c.LAYERS_BZL) as f:
            self.assertNotIn("TARGET_PACKAGES", f.read())

    def test_parses_the_edges_and_macros_of_xml_1_1(self):
        edges, generators = c.parse_query(QUERY)
        self.assertIn(("//nn:linear", "//tensor:ops"), edges)
        self.assertIn(("//nn:linear", "//nn:linear.cc"), edges)
        self.assertIn(("//models/lenet:train", "@fashion_mnist//:files"),
                      edges)
        self.assertEqual(len(edges), 10)
        self.assertEqual(generators, {"//models/lenet:lenet": "dive_model",
                                      "//models/lenet:train": "dive_trainer"})

    def test_downward_same_package_external_and_third_party_edges_pass(self):
        edges, generators = c.parse_query(QUERY)
        self.assertEqual(check(edges, generators), [])

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

    def test_a_target_is_in_the_package_of_its_macros_bzl(self):
        self.assertEqual(c.package_of("//models/lenet:train", TRAINERS,
                                      MACROS), "train")
        self.assertEqual(c.package_of("//models/lenet:lenet",
                                      {"//models/lenet:lenet": "dive_model"},
                                      MACROS), "models")
        self.assertEqual(c.package_of("//models/lenet:lenet", {}, MACROS),
                         "models")
        # A macro of no workspace package (an external one) moves nothing.
        self.assertEqual(c.package_of("//nn:x", {"//nn:x": "cc_proto"},
                                      MACROS), "nn")
        self.assertIsNone(c.package_of("@absl//:status", {}, MACROS))

    def test_trainers_made_by_the_train_macro_sit_in_the_train_layer(self):
        self.assertEqual(check([
            ("//models/lenet:train", "//train:trainer_main"),
            ("//models:train", "//models:zoo"),
            ("//train:distributed_training_test", "//models/lenet:train"),
            ("//tools:trainer_binary_test", "//models/mlp:train"),
        ], TRAINERS), [])
        # Only what the macro declares, whatever its name: a model library
        # may not reach up, a lower layer may not use a trainer, and a
        # binary declared by hand in models/ stays in models.
        self.assertEqual(len(check([
            ("//models/lenet:lenet", "//train:training"),
            ("//models:spec", "//models/lenet:train"),
            ("//models/lenet:train_helper", "//train:training"),
            ("//models/vgg:train", "//train:trainer_main"),
        ], TRAINERS)), 4)

    def test_maps_each_macro_to_the_package_of_its_bzl(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "train/defs.bzl",
                  'def dive_trainer(name = "train", deps = []):\n'
                  '    native.cc_binary(name = name)\n')
            write(root, "models/defs.bzl",
                  "def _helper():\n    pass\n\n"
                  "def dive_model(name, deps = []):\n    _helper()\n")
            write(root, "models/sub/more.bzl", "def zoo_macro():\n  pass\n")
            # Left out: the root's, //third_party's, Bazel's output trees,
            # external repositories and hidden folders.
            write(root, "layers.bzl", "def layer_package_groups():\n  pass\n")
            write(root, "third_party/rules_cc/defs.bzl",
                  "def cc_binary(**attrs):\n  pass\n")
            write(root, "bazel-out/k8/defs.bzl", "def out():\n  pass\n")
            write(root, "external/absl/defs.bzl", "def absl():\n  pass\n")
            write(root, ".git/x.bzl", "def hidden():\n  pass\n")
            write(root, "train/BUILD", "def not_a_bzl():\n  pass\n")
            self.assertEqual(c.macro_packages(root), {
                "dive_trainer": "train",
                "dive_model": "models",
                "zoo_macro": "models",
            })

    def test_a_macro_name_in_two_packages_is_an_error(self):
        with tempfile.TemporaryDirectory() as root:
            write(root, "train/defs.bzl", "def make():\n  pass\n")
            write(root, "tools/defs.bzl", "def make():\n  pass\n")
            write(root, "tools/more.bzl", "def other():\n  pass\n")
            with self.assertRaisesRegex(ValueError, r"make \(tools, train\)"):
                c.macro_packages(root)


if __name__ == "__main__":
    unittest.main()
