"""Offline stand-in for @rules_java//java:defs.bzl.

Bazel 4.2.3 implements all Java rules natively; the upstream rules_java of that
era was a thin macro layer over them. Re-exported here so that Bazel's own
@bazel_tools packages load without network access.
"""

load("//java/private:native_symbols.bzl", "native_JavaInfo", "native_java_common")

def java_binary(**attrs):
    native.java_binary(**attrs)

def java_import(**attrs):
    native.java_import(**attrs)

def java_library(**attrs):
    native.java_library(**attrs)

def java_lite_proto_library(**attrs):
    native.java_lite_proto_library(**attrs)

def java_package_configuration(**attrs):
    native.java_package_configuration(**attrs)

def java_plugin(**attrs):
    native.java_plugin(**attrs)

def java_proto_library(**attrs):
    native.java_proto_library(**attrs)

def java_runtime(**attrs):
    native.java_runtime(**attrs)

def java_test(**attrs):
    native.java_test(**attrs)

def java_toolchain(**attrs):
    native.java_toolchain(**attrs)

java_common = native_java_common
JavaInfo = native_JavaInfo
