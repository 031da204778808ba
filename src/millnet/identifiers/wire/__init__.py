"""The native Handle protocol between nodes and clients, below both serving and the
client: framing over UDP and TCP, the UDP reflection grace, challenge/response
authentication (secret and public keys)."""
