"""Resolution across the hierarchy: the native client, the delegation walk, the
recursive resolver and its cache, cache freshness across nodes (the change follower),
template handles fetched from where they live."""
