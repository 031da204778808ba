"""millnet: an Industrial Internet node (identifier resolution, IIoT platform, security federation)."""

__version__ = "0.1.0"
