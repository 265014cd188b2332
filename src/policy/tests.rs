//! Tests of the pure policy: see policy.rs.
