"""Serving the native Handle protocol (RFC 3652): the request handler, administrative
operations and the logins bound to connections."""
