"""One package per agency that keeps a synchronized view of permits."""
