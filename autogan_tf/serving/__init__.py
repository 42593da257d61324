"""Serving: export of a generator as a versioned SavedModel for TF Serving, and loading an
exported generator back (`export_lib`).
"""
