"""A simulated factory: machines with plausible signals, published as Sparkplug B edge nodes."""
