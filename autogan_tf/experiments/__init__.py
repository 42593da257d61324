"""The paper's experiments as libraries: proxy validity (`proxy_lib`, paper section 4.3.1) and
the comparison of AutoGAN with its baselines over seeds (`compare_lib`), with their matplotlib
figures (`plots`).

Builds on `search` and `training`; the `proxy` and `compare` binaries sit above it. Importing
this package imports nothing.
"""
