"""Helpers for tests of the local backends (machines/)."""
