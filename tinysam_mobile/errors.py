"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class TinySamError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""


class ImageError(TinySamError):
    pass


class PromptError(TinySamError):
    pass


class CheckpointError(TinySamError):
    pass


class ArtifactError(TinySamError):
    pass
