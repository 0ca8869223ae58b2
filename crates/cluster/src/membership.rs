//! SWIM membership (placeholder, being written).
