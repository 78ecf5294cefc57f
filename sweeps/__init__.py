"""Search spaces, one module per study (paper tables, scaling studies)."""
