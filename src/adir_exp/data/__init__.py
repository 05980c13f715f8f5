"""Image loading, value ranges, crops and grids."""
