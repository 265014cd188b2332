//! bwmon: soft daily bandwidth quotas per slice on tc HTB classes.
//!
//! The binary (`main.rs`) is a thin shell over this library so that tests and
//! fuzz targets reach the pure parts directly.

pub mod app;
pub mod apply;
#[cfg(test)]
mod arith_tests;
pub mod classes;
pub mod cli;
pub mod config;
pub mod context;
pub mod error;
pub mod explain;
pub mod files;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod hierarchy;
pub mod history;
pub mod init;
pub mod json;
pub mod lock;
pub mod mail;
pub mod manual;
pub mod nft;
pub mod policy;
pub mod report;
pub mod reset;
pub mod slivers;
pub mod state;
pub mod status;
pub mod sync;
pub mod tc;
pub mod units;
pub mod wire;
