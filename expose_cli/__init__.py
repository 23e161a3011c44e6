"""expose: expressive 3D human mesh recovery (ExPose) as a command-line toolkit."""

__version__ = "0.1.0"
