"""Studies: a study's grid through Ray Tune or as local processes, and its progress lines."""
