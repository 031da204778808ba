"""millnet: an Industrial Internet node.

Identifier resolution, an IIoT platform and security federation in one codebase.
"""

__version__ = "0.1.0"
