"""The training core shared by every algorithm: state, optimizers, mesh, checkpoints, the loop."""
