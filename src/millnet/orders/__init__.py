"""Personalized customization (issue 15): configurable products, orders that become scheduled
work orders over the plant's lines, tracked live from machine data."""
