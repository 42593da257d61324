"""Training: compiled GAN steps with EMA (`gan`), and the trainer of a derived architecture with
checkpoints, evaluation and resume (`train_lib`).

Builds on `autogan_tf.nn` and `autogan_tf.eval`; never imports keras-tuner or the search.
"""
