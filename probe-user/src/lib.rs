//! mapaudit: which goroutines and threads write which Go maps, how hard, from
//! where — and whether any of those writes overlap. See ARCHITECTURE in the
//! README for the data flow.

pub mod fixtures;
pub mod gobin;
