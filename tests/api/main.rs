//! Integration tests: the real application on a random port, each test with
//! its own SQLite file. One binary, so the crate links once.

#[macro_use]
mod helpers;

mod asyncapi;
mod auth;
mod binary;
mod changes;
mod cli;
mod cluster;
mod cors;
mod durability;
mod edge;
mod edge_differential;
mod faults;
mod filtering;
mod handover;
mod hostile;
mod metrics;
mod missed;
mod nginx;
mod openapi;
mod postgres;
mod proxy;
mod publish;
mod raw;
mod retention;
mod shutdown;
mod store_suite;
mod stream;
mod type_filters;
mod websocket;
mod ws_client;
