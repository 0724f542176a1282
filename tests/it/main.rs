//! Integration tests: the real server on a real loopback socket, one binary.

mod auth;
mod base;
mod blobs;
mod catalog;
mod copy_metadata;
mod crash;
mod faults;
mod faulty;
mod integrity;
mod lineage;
mod manifests;
mod meta;
mod mounts;
mod process;
mod rate_limit;
mod referrers;
mod releases;
mod scan;
mod shutdown;
mod startup;
mod storage;
mod support;
mod tags;
mod ui;
mod uploads;
