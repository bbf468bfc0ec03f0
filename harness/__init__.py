"""devstack-harness: a containerised dev stack that proves itself with pytest suites."""

__version__ = "0.1.0"
