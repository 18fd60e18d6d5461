//! `ion-plan`: validate and run progressive-deployment plans.
//!
//! The modules follow the flow of a plan: [`plan`] (model, loading, validation) →
//! engine → journal → reports. [`cli`] turns command lines into calls of these; a run starts
//! from a [`request::RunRequest`], in the runs that [`journal::store`] keeps.

pub mod backtest;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod event;
pub mod exit_code;
pub mod journal;
pub mod plan;
pub mod probe;
pub mod process;
pub mod redact;
pub mod report;
pub mod request;
pub mod stats;
