//! qnet: Deep Q-Networks on CartPole-v1, on libtorch through tch.
