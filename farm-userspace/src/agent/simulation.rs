//! Simulation of the membership protocol: being written.
