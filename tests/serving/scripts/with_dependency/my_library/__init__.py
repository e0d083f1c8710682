"""A package shipped beside the serving code (``serving.dependencies``), importable by name."""


def doubled(values):
    return values * 2
