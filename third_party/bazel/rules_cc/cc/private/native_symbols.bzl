"""Captures Bazel's built-in C++ symbols under private names.

cc/defs.bzl cannot write `cc_common = cc_common` (a module-level binding
shadows the built-in in the whole file), so it loads them from here.
"""

native_cc_common = cc_common
native_CcInfo = CcInfo
native_CcToolchainConfigInfo = CcToolchainConfigInfo
native_DebugPackageInfo = DebugPackageInfo
