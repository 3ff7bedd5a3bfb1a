//! The DQN algorithm: what is learned and how, with no files and no terminal.

pub mod agent;
pub mod aligned;
pub mod eval;
pub mod nstep;
pub mod optim;
pub mod qfunction;
pub mod replay;
pub mod rows;
pub mod schedule;
pub mod state;
pub mod sum_tree;
