"""Offline stand-in for @rules_cc//cc:defs.bzl.

Bazel 4.2.3 (Debian's bazel-bootstrap) implements all C++ rules natively; the
upstream rules_cc of that era was a thin macro layer over them. This file
re-exports the native rules so that `load("@rules_cc//cc:defs.bzl", ...)`
works without network access.
"""

load(
    "//cc/private:native_symbols.bzl",
    "native_CcInfo",
    "native_CcToolchainConfigInfo",
    "native_DebugPackageInfo",
    "native_cc_common",
)

def cc_binary(**attrs):
    native.cc_binary(**attrs)

def cc_import(**attrs):
    native.cc_import(**attrs)

def cc_library(**attrs):
    native.cc_library(**attrs)

def cc_shared_library(**attrs):
    native.cc_shared_library(**attrs)

def cc_test(**attrs):
    native.cc_test(**attrs)

def cc_proto_library(**attrs):
    native.cc_proto_library(**attrs)

def cc_toolchain(**attrs):
    native.cc_toolchain(**attrs)

def cc_toolchain_suite(**attrs):
    native.cc_toolchain_suite(**attrs)

def fdo_profile(**attrs):
    native.fdo_profile(**attrs)

def fdo_prefetch_hints(**attrs):
    native.fdo_prefetch_hints(**attrs)

def objc_library(**attrs):
    native.objc_library(**attrs)

def objc_import(**attrs):
    native.objc_import(**attrs)

cc_common = native_cc_common
CcInfo = native_CcInfo
CcToolchainConfigInfo = native_CcToolchainConfigInfo
DebugPackageInfo = native_DebugPackageInfo
