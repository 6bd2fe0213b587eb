"""Fault tests: real processes killed, stopped, cut off, out of disk, or never read."""
