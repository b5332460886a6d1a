//! Go binary inspection (placeholder, being written).
