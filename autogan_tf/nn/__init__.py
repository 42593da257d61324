"""Keras building blocks: layers, the op table of a generator cell, cells, generators, the
discriminator, losses and model statistics.

Imports only the base modules (`search_space`); nothing here knows about training, metrics or
search. Import the modules themselves (`from autogan_tf.nn import generators`); this file
imports nothing.
"""
