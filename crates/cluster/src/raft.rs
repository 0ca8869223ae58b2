//! Replicated cluster state (placeholder, being written).
