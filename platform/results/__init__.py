"""Results without torch: records, the store, report tables, figures, published numbers, live metrics."""
