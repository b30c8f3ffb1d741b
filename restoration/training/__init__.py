"""Training of the restoration generator: paired data, discriminator, losses and the resumable loop.

Runs on CPU (tests, the ``tiny`` config) and on CUDA (bf16 AMP, optionally DDP through torchrun). Nothing
here imports facexlib or kornia: the GPU box has neither.
"""
