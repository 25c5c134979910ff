//! `opshub bench …`: measurements that print figures and assert nothing
//! (the machine decides). Each runs in scratch databases of its own.

pub mod engine;
pub mod web;
