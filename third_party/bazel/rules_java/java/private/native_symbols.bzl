"""Captures Bazel's built-in Java symbols under private names (see defs.bzl)."""

native_java_common = java_common
native_JavaInfo = JavaInfo
