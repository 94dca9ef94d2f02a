//! One module per subcommand; each `cmd` returns the exit status.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod start;
pub mod state;
pub mod update;
