"""The search: the LSTM controller and REINFORCE (`controller`), the keras-tuner Oracle with the
MLAS beam (`oracle`), the Tuner that trains the shared GAN and scores children (`tuner`), and
the libraries behind the `search` and `derive` binaries (`search_lib`, `derive_lib`).

`python -m autogan_tf.search` runs `__main__.py`, the search binary. Importing this package
imports nothing (keras-tuner loads with the modules that need it).
"""
