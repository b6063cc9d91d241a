//! bank client (to be implemented).
