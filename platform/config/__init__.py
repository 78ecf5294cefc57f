"""Configuration: one typed, frozen RunConfig, its per-method sections, profiles, variants and files."""
