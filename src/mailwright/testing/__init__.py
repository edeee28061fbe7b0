"""Reusable test infrastructure: real servers (NSD, Postfix) on loopback.

Used by the test suite, the benchmarks and ``mailwright demo``; never by the
server itself.
"""
