"""Command-line support shared by the binaries: absl flag definitions, their conversion to the
library's config dataclasses, and the one error handler of every binary.

Only binaries (`python -m autogan_tf.<binary>`) import this package; libraries take configs.
"""
