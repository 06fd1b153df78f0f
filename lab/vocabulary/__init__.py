"""The lab's vocabulary, declared once: event kinds, the `state` and `batch` messages, and
the commands. `lb-lab schema` prints it; the README's contract section is made from it.

This package imports nothing heavy, so that the balancer can take its names from here.
"""
