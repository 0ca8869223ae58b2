//! Plexus node storage (to be written).
