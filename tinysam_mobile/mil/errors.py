"""Errors of the MIL interpreter: a package it cannot read or run is the user's artifact problem."""

from ..errors import ArtifactError


class MilError(ArtifactError):
    """The package is not an ML Program this interpreter can execute, or its inputs do not fit it."""


class UnsupportedOpError(MilError):
    """The program contains an op (or an op variant) the interpreter has no implementation of."""
