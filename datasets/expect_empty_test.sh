#!/bin/bash
# Fails when the file given as $1 (a genquery result) is not empty, printing
# its contents: the dependencies of //datasets outside //datasets, //tensor,
# //third_party and external repositories.
if [[ -s "$1" ]]; then
  echo "//datasets depends on targets outside //tensor:" >&2
  cat "$1" >&2
  exit 1
fi
