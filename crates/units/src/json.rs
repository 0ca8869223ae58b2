//! The JSON bridge (to be written).
