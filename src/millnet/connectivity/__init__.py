"""Field connectivity: one module per protocol, each a
:class:`~millnet.connectivity.base.Source`."""
