//! bwmon: soft daily bandwidth quotas per slice on tc HTB classes.
//!
//! The binary (`main.rs`) is a thin shell over this library so that tests and
//! fuzz targets reach the pure parts directly.

pub mod error;
pub mod slivers;
pub mod tc;
pub mod units;
