"""ResNets on CIFAR (paper Sec. 3.3, Fig. 1, 7, 12-14): config and presets, the model, CIFAR and the bundled digits,
data on the device, measures, checkpoints, the training loop and the experiment.
"""
