"""The identifier store and service: handles and values in the database, HS_ADMIN
authorization, prefix delegation records, the offload that runs writes off the event loop and
the UDP fast path reading stored wire forms."""
