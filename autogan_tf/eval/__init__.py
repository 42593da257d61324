"""Evaluation: IS and FID through TF-GAN (`metrics`) over an injectable classifier
(`classifiers`), the TF-GAN import shim (`tfgan_shim`), the embedded digits classifier
(`digits_classifier`) and scoring a generator or a set of images into a report (`evaluate_lib`).

Builds on the base modules only (`data`, `images`, `sampling`, `errors`).
"""
